"""Ferry before and after a change, beside the minimal app, in one run of the peer harness.

    python3 bench/compare.py --before 964d335 --after /path/to/tree      # ~6 minutes
    make bench-compare BEFORE=964d335 AFTER=/path/to/tree

``--before`` and ``--after`` each take a commit of this repository (exported with ``git
archive``) or a source folder (installed as it is on disk, uncommitted changes included).
Each is installed the way a user installs Ferry (``pip install TREE``, no extras, as
``make bench-venv`` does) into its own venv, ``.bench/before-venv`` and
``.bench/after-venv``; the after venv is constrained to the before venv's dependency
versions, so the two differ only in Ferry's own code (the report lists any package that
still differs).

Both are then measured by the shared peer harness (``../shared/bench/peers/bench.py``: its
own ``one_run``, the same cold-start poll, correctness checks, wrk and ``lat.py`` runs and
RSS reading as the run of record in bench/RESULTS.md), beside the minimal Starlette app
("floor") and, with ``--peers all``, MLflow, BentoML and MLServer. Each model is served from
the same joblib file by every target, one worker pinned to CPU 0, load on CPU 1.

Rounds are the outer loop (``--reps``, 3): in each round every model is served by every
target, in an order rotated from one round to the next, so drift on the machine hits every
target alike. Every cell is the median and the min–max over the rounds. Noise rule: a
difference between after and before is *within noise* when it is no larger than the spread
(max − min) between the rounds of the same build, the larger of the two builds' spreads
(never below the metric's resolution:
1 MB for RSS, 0.5 MB for its anonymous part). Ratios to the floor are taken per round
(the two servers measured minutes apart), then the median over the rounds.

Prints a Markdown table (and writes it to ``.bench/compare/out/results.md``); every raw
number is in ``results.json`` there, each server's output in ``logs/``, the machine's load
average every 10 s in ``load.log``. Loopback only; every run is bounded by the harness's
timeouts.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / ".bench"
ALL_PEERS = ("floor", "mlflow", "bentoml", "mlserver")
BEFORE, AFTER = "ferry-before", "ferry-after"
FERRY_CMD = (
    "{venv}/bin/ferry serve {model_path} --host 127.0.0.1 --port {port} --workers 1 "
    "--log-level warning"
)
FERRY_URL = "/v1/models/model/predict"  # ferry serve names a joblib file's model by its stem


# ----------------------------------------------------------------------------- builds


@dataclass(frozen=True, slots=True)
class Source:
    """A tree to install Ferry from, and what it is."""

    spec: str
    path: Path
    describe: str
    commit: str | None  # set when the tree is an exported commit (the venv can be reused)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve(spec: str, workdir: Path) -> Source:
    """A source folder as it is, or a commit of this repository exported under workdir."""
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path.resolve()
        if not (path / "pyproject.toml").is_file():
            raise SystemExit(f"{path} has no pyproject.toml: not a Ferry source tree")
        try:
            head = _git(path, "rev-parse", "--short=9", "HEAD")
            dirty = _git(path, "status", "--porcelain", "--untracked-files=no")
            describe = f"tree {path} at {head}" + (" + uncommitted changes" if dirty else "")
        except SystemExit:
            describe = f"tree {path} (not a git checkout)"
        return Source(spec, path, describe, None)
    sha = _git(REPO, "rev-parse", "--verify", f"{spec}^{{commit}}")
    folder = workdir / "src" / sha[:12]
    if not (folder / "pyproject.toml").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", sha],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
    return Source(spec, folder, f"commit {sha[:9]} ({spec})", sha)


def _run(argv: Sequence[str | Path], what: str) -> None:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def install(venv: Path, source: Source, python: str, constraints: Path | None, wheels: Path) -> str:
    """``pip install TREE`` (no extras) into venv, then Ferry's own files reinstalled from it,
    both from one wheel built from the tree. An exported commit already installed in this
    venv is not installed again. Returns how it was installed."""
    stamp = venv / ".ferry-source"
    if source.commit and stamp.is_file() and stamp.read_text() == source.commit:
        return "reused"
    stamp.unlink(missing_ok=True)
    if not (venv / "bin" / "python").is_file():
        _run([python, "-m", "venv", venv], f"creating {venv}")
    shutil.rmtree(wheels, ignore_errors=True)
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip"]
    _run([*pip, "wheel", "--quiet", "--no-deps", "-w", wheels, source.path], "building a wheel")
    wheel = next(wheels.glob("*.whl"))
    how = "installed"
    if constraints is not None:
        try:
            _run([*pip, "install", "--quiet", "-c", constraints, wheel], f"pip install {wheel}")
            how = "installed, dependencies pinned to the before venv's"
        except SystemExit as exc:  # the change needs other versions: say so in the report
            print(f"note: pinning to the before venv's versions failed ({exc}); unpinned")
            how = "installed, unpinned (pinning to the before venv's versions failed)"
            _run([*pip, "install", "--quiet", wheel], f"pip install {wheel}")
    else:
        _run([*pip, "install", "--quiet", wheel], f"pip install {wheel}")
    # the same version string may already be installed: replace Ferry's files whatever it says
    _run([*pip, "install", "--quiet", "--no-deps", "--force-reinstall", wheel], "reinstalling")
    if source.commit:
        stamp.write_text(source.commit)
    return how


def clone_venv(before: Path, after: Path) -> None:
    """``after`` as a hard-linked copy of ``before``: the same dependency files, inode for inode.
    Two venvs with the same versions installed separately differ by ~1 MB of file-backed RSS
    (which pages of numpy's or scikit-learn's shared libraries the kernel maps at a fault
    depends on what of each copy is in the page cache), which would hide a real change of that
    size; sharing the files removes it. pip replaces a file by unlinking it, so reinstalling
    Ferry (or a dependency the change needs in another version) in ``after`` leaves ``before``
    intact."""
    shutil.rmtree(after, ignore_errors=True)
    _run(["cp", "-al", before, after], f"linking {after} to {before}")
    (after / ".ferry-source").unlink(missing_ok=True)


def freeze(venv: Path) -> dict[str, str]:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "ferry-ml"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    out = {}
    for line in done.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[name.lower()] = version
    return out


def dependency_diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    names = sorted(set(before) | set(after))
    return [
        f"{n}: {before.get(n, '-')} -> {after.get(n, '-')}"
        for n in names
        if before.get(n) != after.get(n)
    ]


# ----------------------------------------------------------------------------- peers


def peers_dir_default() -> Path:
    for candidate in (REPO.parent / "shared", REPO.parent.parent / "shared"):
        if (candidate / "bench" / "peers" / "bench.py").is_file():
            return candidate / "bench" / "peers"
    return REPO.parent / "shared" / "bench" / "peers"


def prepare_peers(peers_dir: Path, peers: Sequence[str], venvs: Path, work: Path, py: str) -> None:
    """What the harness's run.sh does, for the selected peers only: venvs, models."""
    for peer in {"floor", *peers}:  # the floor's venv trains the models
        if not (venvs / peer / "bin" / "python").is_file():
            print(f"creating the {peer} venv (once; a minute or several) ...", flush=True)
            _run([py, "-m", "venv", venvs / peer], f"creating the {peer} venv")
            pip: list[str | Path] = [venvs / peer / "bin" / "pip", "install", "-q"]
            _run([*pip, "-r", peers_dir / "requirements" / f"{peer}.txt"], f"{peer} install")
    models = work / "models"
    if not (models / "rf20" / "model.joblib").is_file():
        _run([venvs / "floor" / "bin" / "python", peers_dir / "train.py", models], "train.py")
    if "mlflow" in peers:
        for folder in sorted(p for p in models.iterdir() if p.is_dir()):
            if not (folder / "mlflow_model" / "MLmodel").is_file():
                features = json.loads((folder / "expected.json").read_text())["n_features"]
                _run(
                    [venvs / "mlflow" / "bin" / "python", peers_dir / "servers" / "save_mlflow.py",
                     folder / "model.joblib", folder / "mlflow_model", str(features)],
                    "save_mlflow.py",
                )  # fmt: skip


def load_harness(peers_dir: Path, settings: dict[str, str]) -> ModuleType:
    """The peer harness's bench.py as a module: it reads its settings from the environment."""
    os.environ.update(settings)
    os.environ.pop("EXTRA_NAME", None)
    spec = importlib.util.spec_from_file_location("peers_bench", peers_dir / "bench.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {peers_dir / 'bench.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- machine load


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``every`` seconds, also appended to ``log``."""

    def __init__(self, log: Path, every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.log, self.every = log, every
        self.samples: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            load1 = float(Path("/proc/loadavg").read_text().split()[0])
            self.samples.append(load1)
            with self.log.open("a") as out:
                out.write(f"{time.strftime('%H:%M:%S')} load1 {load1:.2f}\n")
            self.stopped.wait(self.every)

    def busiest(self) -> str:
        done = subprocess.run(
            ["ps", "-eo", "pcpu,etime,comm", "--sort=-pcpu"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        return "\n".join(done.stdout.splitlines()[:8])


# ----------------------------------------------------------------------------- measuring


def rss_kinds_mb(pids: Sequence[int]) -> dict[str, float]:
    """RssAnon, RssFile and RssShmem summed over ``pids``, in MB: what a code change moves
    is the anonymous part; the file-backed part also moves with the page cache."""
    total = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, rest = line.partition(":")
            if key in total:
                total[key] += int(rest.split()[0])
    return {key: round(kb / 1024, 1) for key, kb in total.items()}


def record_rss_kinds(harness: ModuleType) -> list[dict[str, float]]:
    """Wrap the harness's ``tree_rss_mb`` (its number unchanged) to also keep RSS by kind."""
    seen: list[dict[str, float]] = []
    original = getattr(harness, "tree_rss_mb")  # noqa: B009
    pids_of = getattr(harness, "tree_pids")  # noqa: B009

    def tree_rss_mb(root: int) -> float:
        seen.append(rss_kinds_mb(pids_of(root)))
        result: float = original(root)
        return result

    setattr(harness, "tree_rss_mb", tree_rss_mb)  # noqa: B010
    return seen


def with_kinds(run: dict[str, Any], seen: list[dict[str, float]]) -> dict[str, Any]:
    """The run, with the RSS kinds of its last reading (after the load) when it got there."""
    out = {**run}
    if seen and "rss_after_load_mb" in run:
        out["rss_kinds_after_load_mb"] = seen[-1]
    seen.clear()
    return out


def measure(
    harness: ModuleType, targets: Sequence[str], models: Sequence[str], reps: int, extra_cold: int
) -> list[dict[str, Any]]:
    """Rounds outermost; within a round, each model on every target, order rotated per round.
    Before each full run, ``extra_cold`` launches that measure only the cold start."""
    runs: list[dict[str, Any]] = []
    seen = record_rss_kinds(harness)
    scenarios = getattr(harness, "SCENARIOS")  # noqa: B009 (a module loaded from a path)
    for rep in range(1, reps + 1):
        for model in models:
            shift = (rep - 1) % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                setattr(harness, "SCENARIOS", [])  # noqa: B010
                try:
                    for k in range(extra_cold):
                        run = harness.one_run(target, model, f"{rep}-cold{k + 1}")
                        runs.append({**with_kinds(run, seen), "rep": rep, "kind": "cold"})
                finally:
                    setattr(harness, "SCENARIOS", scenarios)  # noqa: B010
                run = harness.one_run(target, model, rep)
                runs.append({**with_kinds(run, seen), "rep": rep, "kind": "full"})
                print(progress(run), flush=True)
    return runs


def progress(run: dict[str, Any]) -> str:
    parts = [f"round {run['rep']}", run["model"], run["peer"]]
    if "error" in run:
        return " ".join([*parts, "FAILED:", run["error"][:300]])
    parts.append(f"cold {run['cold_start_s']:.2f}s")
    if "c1raw" in run:
        parts.append(f"c1raw p50 {run['c1raw']['p50_us'] / 1000:.3f}ms")
    if "c32" in run:
        parts.append(f"c32 {run['c32']['req_s']:.0f}/s")
    parts.append(f"rss {run.get('rss_after_load_mb')}MB")
    return " ".join(parts)


# ----------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    label: str
    value: Callable[[dict[str, Any]], float]
    higher_is_better: bool
    digits: int
    resolution: float = 0.0  # the smallest difference the measurement can tell apart
    cold: bool = False  # cold-start-only launches count too


METRICS = (
    Metric("cold_start_s", "cold start s", lambda r: r["cold_start_s"], False, 2, cold=True),
    Metric("c1raw_p50_ms", "c1 p50 ms (raw)", lambda r: r["c1raw"]["p50_us"] / 1e3, False, 3),
    Metric("c1raw_p99_ms", "c1 p99 ms (raw)", lambda r: r["c1raw"]["p99_us"] / 1e3, False, 3),
    Metric("c1_p50_ms", "c1 p50 ms (wrk)", lambda r: r["c1"]["p50_us"] / 1e3, False, 3),
    Metric("c32_req_s", "c32 req/s", lambda r: r["c32"]["req_s"], True, 0),
    Metric("b1000_rows_s", "b1000 c4 rows/s", lambda r: r["b1000"]["rows_s"], True, 0),
    Metric("rss_mb", "RSS after load MB", lambda r: r["rss_after_load_mb"], False, 1, 1.0),
    Metric(
        "rss_anon_mb",
        "RSS anon after load MB",
        lambda r: r["rss_kinds_after_load_mb"]["RssAnon"],
        False,
        1,
        0.5,
    ),
)


def per_round(
    runs: Sequence[dict[str, Any]], target: str, model: str, m: Metric
) -> dict[int, float]:
    """The metric per round: the median of that round's samples (several for cold starts)."""
    samples: dict[int, list[float]] = {}
    for r in runs:
        if r["peer"] != target or r["model"] != model or "error" in r:
            continue
        if r["kind"] == "cold" and not m.cold:
            continue
        try:
            value = float(m.value(r))
        except (KeyError, TypeError):  # a scenario that was not run
            continue
        samples.setdefault(r["rep"], []).append(value)
    return {rep: statistics.median(vals) for rep, vals in samples.items()}


def cell(values: Sequence[float], digits: int) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def ratios(num: dict[int, float], den: dict[int, float]) -> list[float]:
    return [num[k] / den[k] for k in sorted(num) if k in den and den[k]]


def verdict(before: Sequence[float], after: Sequence[float], m: Metric) -> tuple[str, float]:
    """``within noise`` / ``better`` / ``WORSE`` by the rule in the module docstring."""
    if not before or not after:
        return "–", 0.0
    if len(before) < 2 or len(after) < 2:
        return "no verdict (1 round)", 0.0
    noise = max(max(before) - min(before), max(after) - min(after), m.resolution)
    diff = statistics.median(after) - statistics.median(before)
    if abs(diff) <= noise:
        return "within noise", noise
    return ("better" if (diff > 0) == m.higher_is_better else "WORSE"), noise


def summarize(
    runs: Sequence[dict[str, Any]], peers: Sequence[str], models: Sequence[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        for m in METRICS:
            rounds = {t: per_round(runs, t, model, m) for t in (*peers, BEFORE, AFTER)}
            if not rounds[BEFORE] and not rounds[AFTER]:
                continue  # a scenario that was not run
            b, a = list(rounds[BEFORE].values()), list(rounds[AFTER].values())
            word, noise = verdict(b, a, m)
            floor = rounds.get("floor", {})
            out[f"{model}/{m.key}"] = {
                "model": model, "metric": m.key, "label": m.label, "digits": m.digits,
                "rounds": {t: rounds[t] for t in rounds},
                "verdict": word, "noise": noise,
                "after_over_before": (
                    statistics.median(a) / statistics.median(b) if a and b else None
                ),
                "paired_after_over_before": ratios(rounds[AFTER], rounds[BEFORE]),
                "before_over_floor": ratios(rounds[BEFORE], floor),
                "after_over_floor": ratios(rounds[AFTER], floor),
            }  # fmt: skip
    return out


def ratio_cell(ratio: float | None, paired: Sequence[float]) -> str:
    if ratio is None:
        return "–"
    if len(paired) < 2:
        return f"{ratio:.3f}"
    return f"{ratio:.3f} ({min(paired):.3f}–{max(paired):.3f})"


def markdown(summary: dict[str, Any], peers: Sequence[str], meta: dict[str, Any]) -> str:
    lines = [
        f"Before: {meta['before']['describe']}; after: {meta['after']['describe']}.",
        f"{meta['reps']} rounds; {meta['duration_s']} s per load run after {meta['warmup_s']} s "
        f"of warm-up; cold start over {1 + meta['extra_cold_starts']} launches per round; "
        f"{meta['started']} to {meta['ended']} ({meta['wall_s'] / 60:.1f} min); 1-minute load "
        f"average median {meta['load1_median']:.2f}, max {meta['load1_max']:.2f}.",
        "Cells: median (min–max) over rounds. after/before: ratio of the medians (min–max of "
        "the per-round ratios). Verdict: within noise when |after − before| ≤ ± (the larger "
        "spread between rounds of one build). x/floor: median (min–max) of per-round ratios.",
        "",
        "| model | metric | " + " | ".join(peers) + " | before | after | after/before "
        "| verdict | before/floor | after/floor |",
        "|---" * (len(peers) + 8) + "|",
    ]
    for row in summary.values():
        d, rounds = row["digits"], row["rounds"]
        ratio = row["after_over_before"]
        cells = [cell(list(rounds[p].values()), d) for p in peers]
        lines.append(
            f"| {row['model']} | {row['label']} | " + " | ".join(cells) + " | "
            + f"{cell(list(rounds[BEFORE].values()), d)} | {cell(list(rounds[AFTER].values()), d)}"
            + f" | {ratio_cell(ratio, row['paired_after_over_before'])} | {row['verdict']}"
            + (f" (±{row['noise']:,.{d}f})" if row["noise"] else "")
            + f" | {cell(row['before_over_floor'], 2)}"
            + f" | {cell(row['after_over_floor'], 2)} |"
        )  # fmt: skip
    lines += ["", "| target | measured (after) | verdict |", "|---|---|---|"]
    lines += targets(summary)
    if meta["dependency_diff"]:
        lines += ["", "Packages that differ between the two venvs: "
                  + "; ".join(meta["dependency_diff"])]  # fmt: skip
    else:
        lines += ["", "The two venvs hold the same versions of every package but Ferry."]
    if meta["failed_runs"]:
        lines += ["", "Failed runs: " + "; ".join(meta["failed_runs"])]
    return "\n".join(lines) + "\n"


def targets(summary: dict[str, Any]) -> list[str]:
    """The issue's targets: c1 raw p50 <= 1.25x floor; c32, cold start, RSS no worse."""
    lines = []
    for row in summary.values():
        model, metric = row["model"], row["metric"]
        if metric == "c1raw_p50_ms" and row["after_over_floor"]:
            got = statistics.median(row["after_over_floor"])
            was = statistics.median(row["before_over_floor"])
            lines.append(
                f"| {model} c1 raw p50 ≤ 1.25× floor | {got:.2f}× (before {was:.2f}×) "
                f"| {'met' if got <= 1.25 else 'missed'} |"
            )
        elif metric in ("c32_req_s", "cold_start_s", "rss_mb", "rss_anon_mb"):
            goal = "no lower than before" if metric == "c32_req_s" else "no higher than before"
            ratio = row["after_over_before"]
            word = row["verdict"]
            judged = "met" if word in ("within noise", "better") else "missed"
            if word.startswith("no verdict") or ratio is None:
                judged = "–"
            shown = "–" if ratio is None else f"{ratio:.3f}× before, {word}"
            lines.append(f"| {model} {row['label']} {goal} | {shown} | {judged} |")
    return lines


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="964d335", help="commit or source folder")
    parser.add_argument("--after", default=str(REPO), help="source folder or commit")
    parser.add_argument("--reps", type=int, default=3, help="rounds")
    parser.add_argument("--duration", type=int, default=5, help="seconds per load run")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per load run")
    parser.add_argument("--extra-cold-starts", type=int, default=1, help="per target and round")
    parser.add_argument("--models", default="iris_logreg,rf20")
    parser.add_argument("--peers", default="floor", help="comma list of peers, or 'all'")
    parser.add_argument(
        "--scenarios", default="c1raw,c32", help="of the harness's c1,c32,b1000,c1raw"
    )
    parser.add_argument("--peers-dir", type=Path, default=peers_dir_default())
    parser.add_argument("--python", default=sys.executable, help="python for the venvs")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--base-port", default="28100", help="the harness's first port")
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of the measuring (and so of every server)"
    )
    parser.add_argument(
        "--report", type=Path, help="only print the table of an earlier results.json"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    opts = parse_args(argv)
    if opts.report:
        data = json.loads(opts.report.read_text())
        runs, meta = data["runs"], data["meta"]
        print(markdown(summarize(runs, meta["peers"], meta["models"]), meta["peers"], meta))
        return 0
    started = time.time()
    peers = list(ALL_PEERS) if opts.peers == "all" else [p for p in opts.peers.split(",") if p]
    models = [m for m in opts.models.split(",") if m]
    compare, venvs, work = (
        BENCH_DIR / "compare",
        BENCH_DIR / "peers" / "venvs",
        BENCH_DIR / "peers" / "work",
    )
    out = compare / "out"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for old in (out / "logs").glob("*.log"):
        old.unlink()
    (out / "load.log").unlink(missing_ok=True)
    for tool in ("taskset", "wrk"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            raise SystemExit(f"{tool} not found (apt-get install {tool})")
    # the servers must run the installed trees: nothing of the caller's may redirect them
    for name in [n for n in os.environ if n.startswith("FERRY_") or n == "PYTHONPATH"]:
        del os.environ[name]
    os.environ["FERRY_HOME"] = str(compare / "ferry-home")

    before, after = resolve(opts.before, compare), resolve(opts.after, compare)
    print(f"before: {before.describe}\nafter:  {after.describe}", flush=True)
    before_venv, after_venv = BENCH_DIR / "before-venv", BENCH_DIR / "after-venv"
    how_before = install(before_venv, before, opts.python, None, compare / "wheels" / "before")
    pins = compare / "before-constraints.txt"
    before_freeze = freeze(before_venv)
    pins.write_text("".join(f"{n}=={v}\n" for n, v in sorted(before_freeze.items())))
    clone_venv(before_venv, after_venv)
    how_after = "a hard-linked copy of the before venv; " + install(
        after_venv, after, opts.python, pins, compare / "wheels" / "after"
    )
    diff = dependency_diff(before_freeze, freeze(after_venv))
    prepare_peers(opts.peers_dir, peers, venvs, work, opts.python)
    harness = load_harness(opts.peers_dir, {
        "PEERS_VENV_DIR": str(venvs), "PEERS_WORK_DIR": str(work), "PEERS_OUT_DIR": str(out),
        "BENCH_DURATION": str(opts.duration), "BENCH_WARMUP": str(opts.warmup),
        "BENCH_REPS": str(opts.reps), "MODELS": ",".join(models),
        "PEERS": ",".join(peers), "BENCH_SCENARIOS": opts.scenarios,
        "SERVER_CPU": opts.server_cpu, "LOAD_CPU": opts.load_cpu,
        "BENCH_BASE_PORT": opts.base_port,
    })  # fmt: skip
    for label, venv in ((BEFORE, before_venv), (AFTER, after_venv)):
        harness.PEERS[label] = {
            "venv": str(venv), "fmt": "native-instances", "path": FERRY_URL,
            "cmd": FERRY_CMD, "env": {},
        }  # fmt: skip
    setup_s = time.time() - started
    print(f"set up in {setup_s:.0f} s; measuring ...", flush=True)
    # the orchestrator (cold-start polls, lat.py, wrk) beside the load, as run.sh pins it
    os.sched_setaffinity(0, {int(c) for c in opts.load_cpu.split(",")})
    if opts.nice:  # e.g. -10 (root) on a machine that is not quiet: the servers inherit it
        os.nice(opts.nice)
    sampler = LoadSampler(out / "load.log")
    busy_at_start = sampler.busiest()
    sampler.start()
    try:
        runs = measure(harness, [*peers, BEFORE, AFTER], models, opts.reps, opts.extra_cold_starts)
    finally:
        sampler.stopped.set()
    ended = time.time()
    summary = summarize(runs, peers, models)
    samples = sampler.samples or [0.0]
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)) + " UTC",
        "ended": time.strftime("%H:%M", time.gmtime(ended)) + " UTC",
        "wall_s": ended - started, "setup_s": setup_s,
        "before": {"spec": before.spec, "describe": before.describe, "install": how_before},
        "after": {"spec": after.spec, "describe": after.describe, "install": how_after},
        "dependency_diff": diff, "reps": opts.reps, "duration_s": opts.duration,
        "warmup_s": opts.warmup, "extra_cold_starts": opts.extra_cold_starts,
        "scenarios": opts.scenarios, "peers": peers, "models": models,
        "server_cpu": opts.server_cpu, "load_cpu": opts.load_cpu, "nice": opts.nice,
        "load1_median": statistics.median(samples), "load1_max": max(samples),
        "load1_samples": sampler.samples, "busiest_at_start": busy_at_start,
        "busiest_at_end": sampler.busiest(), "python": opts.python,
        "failed_runs": [f"{r['peer']}/{r['model']} round {r['rep']}: {r['error'][:200]}"
                        for r in runs if "error" in r],
    }  # fmt: skip
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1)
    )
    text = markdown(summary, peers, meta)
    (out / "results.md").write_text(text)
    print(text)
    print(f"raw results: {out / 'results.json'}; server logs: {out / 'logs'}")
    return 1 if meta["failed_runs"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
