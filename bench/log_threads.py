"""Where the prediction log's cost goes: CPU per request of each thread, log on vs off.

Two ``ferry serve`` servers of the same model run side by side, both pinned to one CPU:
one without the log, one with ``--log-predictions all``. wrk loads them in turn at c32 from
the other CPU, in ``--pairs`` alternating pairs of ``--seconds`` runs. Around each run, the
CPU time of every thread of the loaded server is read from ``/proc/PID/task/TID/schedstat``
(nanoseconds on the CPU). The table gives microseconds per answered request for the request
thread (the event loop), the predict thread, the log writer and the rest, and the difference
the log makes. Throughput ratios from ``serve.py`` move with the machine's speed from one run
to the next; per-thread CPU time shows which part of the log a change made cheaper.

    .bench/ferry-venv/bin/python bench/log_threads.py --model iris_logreg --pairs 8
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import (  # noqa: E402 - bench/ is a folder of scripts, not a package
    REPO,
    Load,
    Server,
    body_of,
    prepare,
    serving,
    tree_pids,
)

WORKDIR = REPO / ".bench" / "log-threads"


def thread_ns(server: Server) -> dict[tuple[int, int], int]:
    """(pid, tid) -> nanoseconds on the CPU so far, for every thread of the server's tree."""
    found: dict[tuple[int, int], int] = {}
    for pid in tree_pids(server.proc.pid) if server.proc is not None else []:
        tasks = Path(f"/proc/{pid}/task")
        for task in tasks.iterdir() if tasks.exists() else []:
            try:
                found[pid, int(task.name)] = int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError):
                continue
    return found


def roles(spent: dict[tuple[int, int], float], logging: bool) -> dict[str, float]:
    """Name the threads (the kernel knows them all as "ferry"): the process's own thread
    answers requests; the log writer is started on the first logged request, after every
    other thread, so it has the highest id; the predict thread is the busiest of the rest."""
    named = {"request thread": sum(v for (pid, tid), v in spent.items() if pid == tid)}
    rest = {key: value for key, value in spent.items() if key[0] != key[1]}
    if logging and rest:
        named["log writer"] = rest.pop(max(rest, key=lambda key: key[1]))
    if rest:
        named["predict thread"] = rest.pop(max(rest, key=lambda key: rest[key]))
    named["other threads"] = sum(rest.values())
    return named


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="iris_logreg")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    opts = parser.parse_args(argv)
    logs = WORKDIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load = Load(opts.load_cpu, opts.seconds, 2.0, WORKDIR)
    model = prepare(opts.model, WORKDIR / "models")
    body = WORKDIR / f"{model.name}.row1.json"
    body.write_bytes(body_of(model.row1))
    row1 = body.read_bytes()
    home = WORKDIR / "home"
    for old in home.glob("ferry.db*"):
        old.unlink()
    servers = {
        "off": Server(model.bundle_path, model.name, opts.server_cpu, 1, logs / "off.log"),
        "on": Server(
            model.bundle_path, model.name, opts.server_cpu, 1, logs / "on.log",
            env={"FERRY_HOME": str(home)}, args=("--log-predictions", "all"),
        ),
    }  # fmt: skip
    spent: dict[str, dict[tuple[int, int], float]] = {
        "off": defaultdict(float),
        "on": defaultdict(float),
    }
    answered = {"off": 0, "on": 0}
    with (
        serving(servers["off"], row1, model.row1_pred),
        serving(servers["on"], row1, model.row1_pred),
    ):
        for server in servers.values():
            load.wrk(server.url, body, 32, load.warmup)
        for index in range(opts.pairs):
            for side in ("off", "on") if index % 2 == 0 else ("on", "off"):  # drift hits both
                before = thread_ns(servers[side])
                run = load.wrk(servers[side].url, body, 32, opts.seconds)
                for key, value in thread_ns(servers[side]).items():
                    spent[side][key] += value - before.get(key, 0)
                answered[side] += int(run["requests"])
    off, on = (
        roles({k: v / 1000 / max(1, answered[side]) for k, v in spent[side].items()}, side == "on")
        for side in ("off", "on")
    )
    print(
        f"{model.name}: {opts.pairs} pairs of {opts.seconds:g} s at c32, 1 worker, server on "
        f"CPU {opts.server_cpu}; answered: off {answered['off']:,}, on {answered['on']:,}"
    )
    print(f"{'us of CPU per request':<24}{'log off':>10}{'log on':>10}{'on - off':>10}")
    for role in ("request thread", "predict thread", "log writer", "other threads"):
        a, b = off.get(role, 0.0), on.get(role, 0.0)
        print(f"{role:<24}{a:>10.2f}{b:>10.2f}{b - a:>+10.2f}")
    total_off, total_on = sum(off.values()), sum(on.values())
    print(f"{'total':<24}{total_off:>10.2f}{total_on:>10.2f}{total_on - total_off:>+10.2f}")
    print(f"CPU-implied throughput with the log: {total_off / total_on:.3f} of without")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
