"""The staging folder: what a killed server left there is swept when the router is built."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ferry.server.control.staging import sweep_staging
from tests.unit.server.control.harness import running_control


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_removes_only_old_entries(tmp_path: Path) -> None:
    (tmp_path / "upload-old" / "parts").mkdir(parents=True)
    (tmp_path / "upload-old" / "parts" / "part-0").write_bytes(b"x" * 10)
    age(tmp_path / "upload-old", 2 * 24 * 3600)
    (tmp_path / "download-old.tar.gz").write_bytes(b"x")
    age(tmp_path / "download-old.tar.gz", 2 * 24 * 3600)
    (tmp_path / "upload-new").mkdir()
    assert sweep_staging(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload-new"]
    assert sweep_staging(tmp_path / "missing") == 0


def test_building_the_router_sweeps(tmp_path: Path) -> None:
    stale = tmp_path / "staging" / "upload-left-by-a-crash"
    stale.mkdir(parents=True)
    age(stale, 3 * 24 * 3600)
    with running_control(tmp_path) as control:
        assert control.staging_leftovers() == []
