"""Startup without the cycle collector, serving with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
