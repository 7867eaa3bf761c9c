"""Startup without the cycle collector, serving with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def test_collector_is_off_while_loading_and_back_on_before_serving() -> None:
    # a subprocess: the test run's own collector stays untouched
    code = textwrap.dedent(
        """
        import gc
        from ferry.server import workers
        workers.start_loading()
        assert not gc.isenabled()
        loaded = [[i] for i in range(1000)]
        workers._freeze_loaded()
        assert gc.isenabled(), "serving with the collector off would leak every cycle"
        assert gc.get_freeze_count() >= 1000, gc.get_freeze_count()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_worker_stops_when_its_parent_dies_even_by_sigkill() -> None:
    # the parent forks a child that asks to stop with it, prints the child's pid and is
    # SIGKILLed: the kernel stops the child
    code = textwrap.dedent(
        """
        import os, signal, sys, time
        from ferry.server.workers import stop_with_parent
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            stop_with_parent(parent)
            time.sleep(30)
            os._exit(0)
        print(pid, flush=True)
        time.sleep(0.3)
        os.kill(parent, signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 2.0
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _running(child)


def test_a_worker_whose_parent_died_before_it_asked_stops_at_once() -> None:
    code = "from ferry.server.workers import stop_with_parent; import time\n"
    code += "stop_with_parent(parent=1)\ntime.sleep(30)\n"  # pid 1 is not its parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGTERM, done.stderr


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
