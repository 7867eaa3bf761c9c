"""Benchmark ``ferry serve`` on this machine: latency, throughput, cold start and memory.

    python bench/serve.py [--duration 10] [--models iris_logreg,rf20] [--workers 1]

Trains the two models of the peer benchmark (``../shared/bench/peers/train.py``): the iris
LogisticRegression and a 20-feature RandomForest, saves each as a joblib file and as a Ferry
bundle under ``.bench/serve/``, then for each model starts ``ferry serve`` pinned to one core
(``taskset -c 0``) on a free loopback port and drives it from processes pinned to the other
core (``taskset -c 1``):

- cold start: seconds from ``Popen`` of the command to the first correct 1-row answer, polled
  every 50 ms (median of ``--cold-starts`` launches);
- correctness first: the 50-row and the 1000-row answers must equal ``model.predict``;
- ``c1``: 1-row requests on one connection; p50/p99 both raw (a keep-alive ``http.client``
  loop in its own process, no coordinated-omission correction) and from wrk's histogram;
- ``c32``: 1-row requests, wrk ``-t1 -c32``: requests/s;
- ``b1000``: 1000-row requests, wrk ``-t1 -c4``: rows/s;
- RSS and PSS of each worker process after the load, from ``/proc/<pid>/smaps_rollup``
  (cross-checked against ``ferry_worker_memory_bytes`` in /metrics);
- batching on vs off at c1: a second server with ``FERRY_BATCHING=false``; one client sends
  1-row requests alternately to both (the issue's target: p50 with batching on within 10%).
- prediction logging on vs off at c32: a server with ``--log-predictions all`` (writing to a
  fresh SQLite file) and one without, measured alternately three times each; the ratio of the
  medians (the target: logging keeps at least 90% of the throughput), with the rows the log
  holds afterwards and ``ferry_predlog_dropped_total``.

Loopback only; every request, wrk run and child process has a timeout; each server's process
tree is killed at the end, whatever happens. Results are printed as a table and written to
``.bench/serve/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FERRY = Path(sys.executable).parent / "ferry"
HOST = "127.0.0.1"
POLL_SECONDS = 0.05
COLD_TIMEOUT_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
MODELS = ("iris_logreg", "rf20")

WRK_SCRIPT = """\
-- fixed POST body from $WRK_BODY_FILE; one JSON summary line at the end
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    e.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class Prepared:
    """One trained model on disk, with request rows and the model's own answers."""

    name: str
    joblib_path: Path
    bundle_path: Path
    row1: list[list[float]]
    row1_pred: list[float]
    check: list[list[float]]
    check_pred: list[float]
    rows1000: list[list[float]]
    rows1000_pred: list[float]


def prepare(name: str, folder: Path) -> Prepared:
    """Train ``name`` exactly as the peer benchmark's train.py does; save joblib + bundle."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from ferry.model import save

    model: Any
    if name == "iris_logreg":
        X, y = load_iris(return_X_y=True)
        X = X.astype(np.float64)
        model = LogisticRegression(max_iter=1000).fit(X, y)
    elif name == "rf20":
        X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
        model = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(X, y)
    else:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    joblib_path = target / "model.joblib"
    joblib.dump(model, joblib_path)
    bundle_path = target / "bundle"
    save(model, bundle_path, example=X[:5], name=name, overwrite=True)
    rows1000 = X[np.random.default_rng(0).integers(0, len(X), 1000)]

    def pred(rows: Any) -> list[float]:
        return [float(v) for v in model.predict(rows)]

    return Prepared(
        name=name,
        joblib_path=joblib_path,
        bundle_path=bundle_path,
        row1=X[:1].tolist(),
        row1_pred=pred(X[:1]),
        check=X[:50].tolist(),
        check_pred=pred(X[:50]),
        rows1000=rows1000.tolist(),
        rows1000_pred=pred(rows1000),
    )


# ----------------------------------------------------------------------------- HTTP


def post(url: str, body: bytes, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Any:
    """POST a JSON body on a fresh connection; the decoded JSON answer, or an error."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


def get(url: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> str:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def predictions(answer: Any) -> list[float]:
    values = answer["predictions"] if isinstance(answer, dict) else answer
    return [float(v) for v in values]


def body_of(rows: list[list[float]]) -> bytes:
    return json.dumps({"instances": rows}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# ----------------------------------------------------------------------------- processes


def tree_pids(root: int) -> list[int]:
    """``root`` and every descendant, parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB, from smaps_rollup; (0, 0) if it is gone."""
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0, 0.0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0])
    return round(fields.get("Rss", 0) / 1024, 1), round(fields.get("Pss", 0) / 1024, 1)


@dataclass(slots=True)
class Server:
    """A ``ferry serve`` process tree pinned to ``cpus``, in its own session."""

    path: Path
    name: str
    cpus: str
    workers: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1/models/{self.name}/predict"

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def argv(self) -> list[str]:
        return [
            "taskset", "-c", self.cpus, str(FERRY), "serve", str(self.path),
            "--host", HOST, "--port", str(self.port), "--workers", str(self.workers),
            "--log-level", "warning", *self.args,
        ]  # fmt: skip

    def start(self, row: bytes, expected: list[float]) -> float:
        """Launch and wait for the first correct answer; the seconds that took."""
        self.port = free_port()
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            started = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv(), env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
            )  # fmt: skip
        last_error = "no answer"
        while time.monotonic() - started < COLD_TIMEOUT_SECONDS:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ferry serve exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                got = predictions(post(self.url, row, timeout=5.0))
                if got == expected:
                    return time.monotonic() - started
                last_error = f"wrong answer {got}"
            except (OSError, RuntimeError, ValueError) as exc:  # not up yet
                last_error = repr(exc)
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"no correct answer within {COLD_TIMEOUT_SECONDS:.0f}s: {last_error}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's process tree so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
        return total / ticks

    def pids(self) -> list[int]:
        return tree_pids(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        """SIGTERM the whole tree, then SIGKILL whatever is left."""
        if self.proc is None:
            return
        pids = self.pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.05)
            if not any(_alive(p) for p in pids):
                break
        self.proc = None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def serving(server: Server, row: bytes, expected: list[float]) -> Iterator[float]:
    try:
        yield server.start(row, expected)
    finally:
        server.stop()


# ----------------------------------------------------------------------------- load


@dataclass(frozen=True, slots=True)
class Load:
    """Where load generators run and for how long."""

    cpu: str
    duration: float
    warmup: float
    workdir: Path

    def wrk(self, url: str, body_file: Path, conns: int, seconds: float) -> dict[str, float]:
        script = self.workdir / "post.lua"
        if not script.exists():
            script.write_text(WRK_SCRIPT)
        argv = [
            "taskset", "-c", self.cpu, "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "--latency", "-s", str(script), url,
        ]  # fmt: skip
        env = {**os.environ, "WRK_BODY_FILE": str(body_file)}
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        for line in done.stdout.splitlines():
            if line.startswith("WRKJSON "):
                result: dict[str, float] = json.loads(line[8:])
                result["req_s"] = result["requests"] / (result["duration_us"] / 1e6)
                return result
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    def raw(self, url: str, body_file: Path, seconds: float) -> dict[str, float]:
        """Raw per-request latency at concurrency 1, from a pinned child process."""
        return self.raw_interleaved([url], body_file, seconds)[0]

    def raw_interleaved(
        self, urls: Sequence[str], body_file: Path, seconds: float
    ) -> list[dict[str, float]]:
        """One connection per URL, requests alternating between them: one summary per URL."""
        argv = [
            "taskset", "-c", self.cpu, sys.executable, __file__,
            "_latency", ",".join(urls), str(body_file), str(seconds),
        ]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        if done.returncode:
            raise RuntimeError(f"latency loop failed: {done.stderr[-2000:]}")
        result: list[dict[str, float]] = json.loads(done.stdout)
        return result

    def measure(self, url: str, body_file: Path, conns: int) -> dict[str, float]:
        if self.warmup:
            self.wrk(url, body_file, conns, self.warmup)
        return self.wrk(url, body_file, conns, self.duration)

    def measure_raw(self, url: str, body_file: Path, seconds: float) -> dict[str, float]:
        if self.warmup:
            self.raw(url, body_file, min(self.warmup, seconds))
        return self.raw(url, body_file, seconds)


def latency_loop(urls: str, body_file: str, seconds: float) -> None:
    """``serve.py _latency URL[,URL...] BODY SECONDS``: keep-alive loop, sequential requests.

    With several URLs the requests alternate between them (one connection each), so drift on
    the machine hits every server alike. Prints a JSON list of percentiles, one per URL.
    """
    body = Path(body_file).read_bytes()
    headers = {"Content-Type": "application/json"}
    targets = [_Target(url) for url in urls.split(",")]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for target in targets:
            start = time.perf_counter_ns()
            target.conn.request("POST", target.path, body, headers)
            response = target.conn.getresponse()
            response.read()
            target.samples.append(time.perf_counter_ns() - start)
            target.errors += response.status >= 300
    summaries = []
    for target in targets:
        target.conn.close()
        samples = sorted(target.samples)
        summaries.append(
            {
                "requests": len(samples),
                "errors": target.errors,
                "p50_us": _percentile(samples, 50),
                "p99_us": _percentile(samples, 99),
                "max_us": samples[-1] / 1000,
                "req_s": len(samples) / seconds,
            }
        )
    print(json.dumps(summaries))


class _Target:
    """One server of the latency loop: its keep-alive connection and its samples."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=30)
        self.path = parts.path
        self.samples: list[int] = []
        self.errors = 0


def _percentile(sorted_ns: list[int], p: float) -> float:
    """The p-th percentile of sorted nanoseconds, in microseconds (nearest rank, as lat.py)."""
    return sorted_ns[min(len(sorted_ns) - 1, int(p / 100 * len(sorted_ns)))] / 1000


# ----------------------------------------------------------------------------- one model


@dataclass(slots=True)
class Result:
    model: str
    artifact: str
    workers: int
    cold_start_s: float = 0.0
    cold_starts_s: list[float] = field(default_factory=list)
    correct: bool = False
    c1raw: dict[str, float] = field(default_factory=dict)
    c1: dict[str, float] = field(default_factory=dict)
    c32: dict[str, float] = field(default_factory=dict)
    b1000: dict[str, float] = field(default_factory=dict)
    b1000_rows_s: float = 0.0
    memory_idle: list[dict[str, Any]] = field(default_factory=list)
    memory_after_load: list[dict[str, Any]] = field(default_factory=list)
    metrics_memory_mb: dict[str, float] = field(default_factory=dict)
    batching_p50_on_us: list[float] = field(default_factory=list)
    batching_p50_off_us: list[float] = field(default_factory=list)
    logging_on_req_s: list[float] = field(default_factory=list)
    logging_off_req_s: list[float] = field(default_factory=list)
    logging_on_cpu_ms: list[float] = field(default_factory=list)
    logging_off_cpu_ms: list[float] = field(default_factory=list)
    logged_requests: int = 0
    logging_requests_sent: int = 0
    logging_dropped: float = 0.0
    error: str = ""

    def worker_memory(self) -> list[dict[str, Any]]:
        workers = [m for m in self.memory_after_load if m["role"] == "worker"]
        return workers or self.memory_after_load

    def logging_ratio(self) -> float | None:
        """Median over the adjacent pairs of (req/s with the log) / (req/s without)."""
        pairs = list(zip(self.logging_on_req_s, self.logging_off_req_s, strict=False))
        if not pairs:
            return None
        return statistics.median(on / off for on, off in pairs)

    def logging_cpu_ratio(self) -> float | None:
        """Throughput the CPU cost per request implies: cpu without / cpu with the log."""
        if not self.logging_on_cpu_ms or not self.logging_off_cpu_ms:
            return None
        on = statistics.median(self.logging_on_cpu_ms)
        return statistics.median(self.logging_off_cpu_ms) / on

    def batching_ratio(self) -> float | None:
        if not self.batching_p50_on_us or not self.batching_p50_off_us:
            return None
        on = statistics.median(self.batching_p50_on_us)
        return on / statistics.median(self.batching_p50_off_us)


def memory_of(server: Server) -> list[dict[str, Any]]:
    """RSS/PSS of each process in the server tree; taskset execs ferry, so the root is ferry."""
    pids = server.pids()
    out = []
    for index, pid in enumerate(pids):
        rss, pss = memory_mb(pid)
        role = "worker" if server.workers == 1 or index > 0 else "supervisor"
        out.append({"pid": pid, "role": role, "rss_mb": rss, "pss_mb": pss})
    return out


def metrics_memory(server: Server) -> dict[str, float]:
    """``ferry_worker_memory_bytes`` from /metrics, in MB, by label set."""
    out: dict[str, float] = {}
    for line in get(f"{server.base}/metrics", timeout=10).splitlines():
        if line.startswith("ferry_worker_memory_bytes{"):
            labels, _, value = line.rpartition(" ")
            out[labels.removeprefix("ferry_worker_memory_bytes")] = round(float(value) / 2**20, 1)
    return out


def check(url: str, model: Prepared) -> None:
    """The 50-row and 1000-row answers must equal model.predict exactly."""
    for label, rows, want in (
        ("50-row", model.check, model.check_pred),
        ("1000-row", model.rows1000, model.rows1000_pred),
    ):
        got = predictions(post(url, body_of(rows), timeout=60))
        if got != want:
            raise RuntimeError(f"{model.name}: {label} answer differs from model.predict")


def bench_model(model: Prepared, opts: argparse.Namespace, load: Load, logs: Path) -> Result:
    path = model.bundle_path if opts.artifact == "bundle" else model.joblib_path
    name = model.name if opts.artifact == "bundle" else "model"
    result = Result(model=model.name, artifact=opts.artifact, workers=opts.workers)
    bodies = {}
    for key, rows in (("row1", model.row1), ("rows1000", model.rows1000)):
        bodies[key] = load.workdir / f"{model.name}.{key}.json"
        bodies[key].write_bytes(body_of(rows))
    row1 = bodies["row1"].read_bytes()

    def new_server(**env: str) -> Server:
        log = logs / f"{model.name}{'.batching-off' if env else ''}.log"
        return Server(path, name, opts.server_cpu, opts.workers, log, env=env)

    try:
        for _ in range(max(0, opts.cold_starts - 1)):  # extra launches: cold start only
            with serving(new_server(), row1, model.row1_pred) as seconds:
                result.cold_starts_s.append(seconds)
        server = new_server()
        with serving(server, row1, model.row1_pred) as seconds:
            result.cold_starts_s.append(seconds)
            result.cold_start_s = statistics.median(result.cold_starts_s)
            check(server.url, model)
            result.correct = True
            result.memory_idle = memory_of(server)
            result.c1raw = load.measure_raw(server.url, bodies["row1"], load.duration)
            result.c1 = load.measure(server.url, bodies["row1"], 1)
            result.c32 = load.measure(server.url, bodies["row1"], 32)
            result.b1000 = load.measure(server.url, bodies["rows1000"], 4)
            result.b1000_rows_s = result.b1000["req_s"] * len(model.rows1000)
            result.memory_after_load = memory_of(server)
            result.metrics_memory_mb = metrics_memory(server)
            if opts.batching_check:
                compare_batching(server, new_server(FERRY_BATCHING="false"), model, load, result)
        if opts.logging_check:
            compare_logging(path, name, model, opts, load, logs, result)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        result.error = str(exc)[:2000]
    return result


def compare_batching(
    on: Server, off_server: Server, model: Prepared, load: Load, result: Result
) -> None:
    """Raw c1 p50 with batching on vs off: requests alternate between the two servers, so
    drift on the machine hits both alike; three runs."""
    body = load.workdir / f"{model.name}.row1.json"
    with serving(off_server, body.read_bytes(), model.row1_pred):
        check(off_server.url, model)
        urls = [on.url, off_server.url]
        load.raw_interleaved(urls, body, min(load.warmup or 1.0, 2.0))
        seconds = max(2.0, load.duration / 3)
        for _ in range(3):
            on_run, off_run = load.raw_interleaved(urls, body, seconds)
            result.batching_p50_on_us.append(on_run["p50_us"])
            result.batching_p50_off_us.append(off_run["p50_us"])


def compare_logging(
    path: Path,
    name: str,
    model: Prepared,
    opts: argparse.Namespace,
    load: Load,
    logs: Path,
    result: Result,
) -> None:
    """c32 req/s with the prediction log on vs off: two servers up side by side (the idle one
    costs nothing), measured in ``--logging-pairs`` adjacent pairs of runs, alternating which
    goes first; also the server's CPU time per request (user + system of its process tree),
    which other load on the machine disturbs far less than req/s."""
    import shutil
    import sqlite3

    home = load.workdir / "predlog-home"
    shutil.rmtree(home, ignore_errors=True)
    body = load.workdir / f"{model.name}.row1.json"
    row1 = body.read_bytes()
    off = Server(path, name, opts.server_cpu, opts.workers, logs / f"{model.name}.log-off.log")
    on = Server(
        path, name, opts.server_cpu, opts.workers, logs / f"{model.name}.log-on.log",
        env={"FERRY_HOME": str(home)}, args=("--log-predictions", "all"),
    )  # fmt: skip
    with serving(off, row1, model.row1_pred), serving(on, row1, model.row1_pred):
        check(on.url, model)
        for server in (off, on):
            load.wrk(server.url, body, 32, max(1.0, load.warmup))
        seconds = max(2.0, load.duration / 3)
        for index in range(opts.logging_pairs):
            pair = (off, on) if index % 2 == 0 else (on, off)  # drift hits both alike
            for server in pair:
                before = server.cpu_seconds()
                run = load.wrk(server.url, body, 32, seconds)
                cpu_ms = (server.cpu_seconds() - before) * 1000 / max(1, run["requests"])
                if server is on:
                    result.logging_on_req_s.append(run["req_s"])
                    result.logging_on_cpu_ms.append(cpu_ms)
                else:
                    result.logging_off_req_s.append(run["req_s"])
                    result.logging_off_cpu_ms.append(cpu_ms)
        time.sleep(2.0)  # requests wrk left in flight finish; the writer flushes every second
        text = get(f"{on.base}/metrics", timeout=10)
        sent = _metric(text, "ferry_requests_total")
        result.logging_dropped = _metric(text, "ferry_predlog_dropped_total")
    result.logging_requests_sent = round(sent)
    with contextlib.closing(sqlite3.connect(home / "ferry.db")) as db:
        logged = db.execute("SELECT coalesce(sum(requests), 0) FROM prediction_chunks")
        result.logged_requests = logged.fetchone()[0]


def _metric(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rpartition(" ")[2])
    return total


# ----------------------------------------------------------------------------- report


def report(results: Sequence[Result], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def ms(us: float | None) -> str:
        return "-" if us is None else f"{us / 1000:.2f}"

    def num(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    caption = (
        f"{meta['artifact']}, {meta['workers']} worker(s), server on CPU {meta['server_cpu']}, "
        f"load on CPU {meta['load_cpu']}, {meta['duration']:.0f} s per load run"
    )
    table = Table(title="ferry serve", caption=caption)
    table.add_column("metric")
    for r in results:
        table.add_column(r.model, justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("correct (50 & 1000 rows)", [("yes" if r.correct else "NO") for r in results]),
        ("cold start s", [num(r.cold_start_s or None, 2) for r in results]),
        ("c1 p50 ms (raw)", [ms(r.c1raw.get("p50_us")) for r in results]),
        ("c1 p99 ms (raw)", [ms(r.c1raw.get("p99_us")) for r in results]),
        ("c1 max ms (raw)", [ms(r.c1raw.get("max_us")) for r in results]),
        ("c1 p50 ms (wrk)", [ms(r.c1.get("p50_us")) for r in results]),
        ("c1 p99 ms (wrk)", [ms(r.c1.get("p99_us")) for r in results]),
        ("c32 req/s", [num(r.c32.get("req_s")) for r in results]),
        ("c32 p99 ms (wrk)", [ms(r.c32.get("p99_us")) for r in results]),
        ("b1000 c4 rows/s", [num(r.b1000_rows_s or None) for r in results]),
        (
            "RSS per worker MB",
            [num(max((m["rss_mb"] for m in r.worker_memory()), default=None), 1) for r in results],
        ),
        (
            "PSS per worker MB",
            [num(max((m["pss_mb"] for m in r.worker_memory()), default=None), 1) for r in results],
        ),
        (
            "PSS total MB",
            [num(sum(m["pss_mb"] for m in r.memory_after_load) or None, 1) for r in results],
        ),
        (
            "c1 p50 batching on/off",
            [num(r.batching_ratio(), 3) for r in results],
        ),
        (
            "c32 req/s prediction log off",
            [
                num(statistics.median(r.logging_off_req_s) if r.logging_off_req_s else None)
                for r in results
            ],
        ),
        (
            "c32 req/s prediction log on",
            [
                num(statistics.median(r.logging_on_req_s) if r.logging_on_req_s else None)
                for r in results
            ],
        ),
        ("c32 log on/off (>= 0.9)", [num(r.logging_ratio(), 3) for r in results]),
        (
            "CPU ms/request log off / on",
            [
                f"{statistics.median(r.logging_off_cpu_ms):.3f} / "
                f"{statistics.median(r.logging_on_cpu_ms):.3f}"
                if r.logging_on_cpu_ms
                else "-"
                for r in results
            ],
        ),
        ("CPU-implied log on/off", [num(r.logging_cpu_ratio(), 3) for r in results]),
        (
            "logged / answered / dropped",
            [
                f"{r.logged_requests:,} / {r.logging_requests_sent:,} / {r.logging_dropped:,.0f}"
                if r.logging_on_req_s
                else "-"
                for r in results
            ],
        ),
        (
            "wrk errors",
            [
                num(
                    sum(w.get("errors", 0) for w in (r.c1, r.c32, r.b1000))
                    + r.c1raw.get("errors", 0)
                )
                for r in results
            ],
        ),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    console = Console()
    console.print(table)
    for r in results:
        if r.error:
            console.print(f"[red]{r.model} failed:[/red] {r.error}")


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of models")
    parser.add_argument("--workers", type=int, default=1, help="ferry serve --workers")
    parser.add_argument(
        "--artifact", choices=("bundle", "joblib"), default="bundle", help="what to serve"
    )
    parser.add_argument("--cold-starts", type=int, default=3, help="launches for cold start")
    parser.add_argument(
        "--no-batching-check",
        dest="batching_check",
        action="store_false",
        help="skip the batching on/off comparison at c1",
    )
    parser.add_argument(
        "--no-logging-check",
        dest="logging_check",
        action="store_false",
        help="skip the prediction logging on/off comparison at c32",
    )
    parser.add_argument(
        "--logging-pairs", type=int, default=6, help="on/off run pairs for the logging check"
    )
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for the server")
    parser.add_argument("--load-cpu", default="1", help="taskset CPU list for the load")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".bench" / "serve", help="models, logs, results"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["_latency"]:
        latency_loop(argv[1], argv[2], float(argv[3]))
        return 0
    opts = parse_args(argv)
    for tool in ("taskset", "wrk"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            raise SystemExit(f"{tool} not found (apt-get install {tool})")
    names = [n.strip() for n in opts.models.split(",") if n.strip()]
    workdir: Path = opts.workdir.resolve()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    load = Load(opts.load_cpu, opts.duration, opts.warmup, workdir)
    # the orchestrator (cold-start polling, correctness checks) runs beside the load, too
    os.sched_setaffinity(0, {int(c) for c in opts.load_cpu.split(",")})
    print(f"training {', '.join(names)} under {workdir} ...", flush=True)
    prepared = [prepare(name, workdir / "models") for name in names]
    results = []
    for model in prepared:
        print(f"benchmarking {model.name} ...", flush=True)
        results.append(bench_model(model, opts, load, logs))
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "artifact": opts.artifact,
        "workers": opts.workers,
        "server_cpu": opts.server_cpu,
        "load_cpu": opts.load_cpu,
        "duration": opts.duration,
        "warmup": opts.warmup,
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    out = workdir / "results.json"
    out.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=1))
    report(results, meta)
    print(f"raw results: {out}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
