"""Memory of ``ferry serve`` over time and across workers: the issue's two memory targets.

    python bench/memory.py [--soak 300] [--shared-mb 200] [--skip soak|shared]

- **soak**: the iris LogisticRegression under wrk load (1-row requests, 32 connections) for
  ``--soak`` seconds, one worker pinned to CPU 0, wrk on CPU 1; the worker's RSS is sampled
  every ``--every`` seconds. After a warm-up (allocators and caches settle in the first
  seconds), RSS must stay flat: the target is growth under 5% from the first sample after the
  warm-up to the largest one after it.
- **shared**: a model holding ``--shared-mb`` MB of float64 training data (a brute-force
  KNeighborsClassifier keeps every training row), served with ``--workers 1`` and then
  ``--workers 4``; each worker answers requests (so each has touched the model), then the
  proportional set size (PSS: every shared page counted once, split among the processes
  sharing it) of the whole process tree is added up. Target: 4 workers use at most 1.5x the
  memory of one.

Loopback only; every server is stopped (process tree) whatever happens. Results are printed as
a table and written to ``.bench/memory/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import (  # noqa: E402 - bench/ is a folder of scripts, not a package
    REPO,
    Load,
    Server,
    body_of,
    memory_mb,
    post,
    predictions,
    prepare,
    serving,
)

WORKDIR = REPO / ".bench" / "memory"
SOAK_WARMUP_SECONDS = 30.0


def soak(seconds: float, every: float, logs: Path) -> dict[str, Any]:
    """RSS of one worker sampled under constant load."""
    model = prepare("iris_logreg", WORKDIR / "models")
    body = WORKDIR / "iris.row1.json"
    body.write_bytes(body_of(model.row1))
    load = Load(cpu="1", duration=seconds, warmup=0.0, workdir=WORKDIR)
    server = Server(model.bundle_path, model.name, "0", 1, logs / "soak.log")
    samples: list[tuple[float, float]] = []
    with serving(server, body.read_bytes(), model.row1_pred), ThreadPoolExecutor(1) as pool:
        worker = server.pids()[-1]
        started = time.monotonic()
        running = pool.submit(load.wrk, server.url, body, 32, seconds)
        while not running.done():
            samples.append((round(time.monotonic() - started, 1), memory_mb(worker)[0]))
            time.sleep(every)
        wrk = running.result()
        samples.append((round(time.monotonic() - started, 1), memory_mb(worker)[0]))
    settled = [rss for at, rss in samples if at >= SOAK_WARMUP_SECONDS] or [samples[-1][1]]
    return {
        "seconds": seconds,
        "requests": wrk["requests"],
        "errors": wrk["errors"],
        "req_s": round(wrk["req_s"]),
        "rss_start_mb": samples[0][1],
        "rss_after_warmup_mb": settled[0],
        "rss_max_mb": max(settled),
        "rss_end_mb": settled[-1],
        "growth_pct": round(100 * (max(settled) - settled[0]) / settled[0], 2),
        "samples": samples,
    }


def big_model(megabytes: int) -> tuple[Path, list[list[float]], list[float]]:
    """A KNeighborsClassifier over ``megabytes`` MB of rows (20 float64 features), saved as a
    bundle; a request row and the model's answer for it."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from ferry.model import save

    features = 20
    rows = megabytes * 2**20 // (8 * features)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X, y)
    folder = WORKDIR / "models" / f"knn{megabytes}"
    if not (folder / "ferry.yaml").exists():
        save(model, folder, example=X[:5], name="knn", overwrite=True)
    probe = X[:1].tolist()
    return folder, probe, [float(v) for v in model.predict(X[:1])]


def tree_pss(server: Server) -> tuple[float, list[dict[str, float]]]:
    processes = []
    for pid in server.pids():
        rss, pss = memory_mb(pid)
        processes.append({"pid": pid, "rss_mb": rss, "pss_mb": pss})
    return round(sum(p["pss_mb"] for p in processes), 1), processes


def shared(megabytes: int, logs: Path) -> dict[str, Any]:
    """Whole-tree PSS with one worker and with four, each worker having answered requests."""
    folder, probe, expected = big_model(megabytes)
    row = body_of(probe)
    out: dict[str, Any] = {"model_mb": megabytes}
    for workers in (1, 4):
        server = Server(folder, "knn", "0", workers, logs / f"shared-{workers}.log")
        with serving(server, row, expected):
            # many concurrent requests, so the kernel hands connections to every worker
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(post, [server.url] * 200, [row] * 200))
            if any(predictions(a) != expected for a in answers):
                raise RuntimeError(f"{workers} workers: wrong answer")
            time.sleep(1.0)
            total, processes = tree_pss(server)
        out[f"workers_{workers}"] = {"pss_total_mb": total, "processes": processes}
    out["ratio"] = round(out["workers_4"]["pss_total_mb"] / out["workers_1"]["pss_total_mb"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--shared-mb", type=int, default=200, help="size of the shared model")
    parser.add_argument("--skip", action="append", default=[], choices=["soak", "shared"])
    opts = parser.parse_args()
    logs = WORKDIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if "shared" not in opts.skip:
        results["shared"] = shared(opts.shared_mb, logs)
    if "soak" not in opts.skip:
        results["soak"] = soak(opts.soak, opts.every, logs)
    (WORKDIR / "results.json").write_text(json.dumps(results, indent=2))
    print("| measurement | value | target |\n| --- | --- | --- |")
    if "shared" in results:
        one, four = results["shared"]["workers_1"], results["shared"]["workers_4"]
        print(
            f"| {opts.shared_mb} MB model, 1 worker: PSS of the tree | {one['pss_total_mb']} MB | |"
        )
        print(f"| same model, 4 workers: PSS of the tree | {four['pss_total_mb']} MB | |")
        print(f"| 4 workers / 1 worker | {results['shared']['ratio']}x | <= 1.5x |")
    if "soak" in results:
        s = results["soak"]
        print(
            f"| soak: {s['seconds']:.0f} s at c32, {s['requests']} requests, "
            f"{s['errors']} errors | {s['req_s']} req/s | |"
        )
        print(
            f"| soak: RSS after {SOAK_WARMUP_SECONDS:.0f} s warm-up -> max -> end | "
            f"{s['rss_after_warmup_mb']} -> {s['rss_max_mb']} -> {s['rss_end_mb']} MB | |"
        )
        print(f"| soak: RSS growth after warm-up | {s['growth_pct']}% | < 5% |")


if __name__ == "__main__":
    main()
