"""The staging folder: what a killed server left there is swept when the router is built."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ferry.server.control.workdirs import WorkDir, sweep_staging
from tests.unit.server.control.harness import running_control


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_keeps_held_folders_and_removes_the_rest(tmp_path: Path) -> None:
    held = WorkDir(tmp_path, "upload")  # a live upload of this process
    (held.path / "parts").mkdir()
    (tmp_path / "upload-dead" / "parts").mkdir(parents=True)  # nobody holds it: any age goes
    (tmp_path / "upload-dead" / "parts" / "part-0").write_bytes(b"x" * 10)
    (tmp_path / "download-old.tar.gz").write_bytes(b"x")
    age(tmp_path / "download-old.tar.gz", 2 * 24 * 3600)
    (tmp_path / "download-new.tar.gz").write_bytes(b"x")  # a file: only by age
    (tmp_path / ".claim-upload-new").mkdir()  # being made right now: only by age
    assert sweep_staging(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [held.path.name, "download-new.tar.gz", ".claim-upload-new"]
    )
    held.remove()
    held.remove()
    assert not held.path.exists()
    assert sweep_staging(tmp_path / "missing") == 0


def test_a_killed_owner_lets_its_folder_go(tmp_path: Path) -> None:
    """A process holding a work folder is SIGKILLed: the next sweep removes the folder, while
    one held by a live process stays."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ferry.server.control.workdirs import WorkDir\n"
        "work = WorkDir(Path(sys.argv[1]), 'upload')\n"
        "(work.path / 'part-0').write_bytes(b'x' * 1000)\n"
        "print(work.path, flush=True)\n"
        "time.sleep(60)\n"
    )
    owners = [
        subprocess.Popen(  # noqa: S603 - this interpreter
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        folders = [Path(owner.stdout.readline().strip()) for owner in owners if owner.stdout]
        assert all(folder.is_dir() for folder in folders)
        assert sweep_staging(tmp_path) == 0  # both alive
        owners[0].send_signal(signal.SIGKILL)
        owners[0].wait(timeout=10)
        assert sweep_staging(tmp_path) == 1
        assert not folders[0].exists()
        assert folders[1].is_dir()
    finally:
        for owner in owners:
            owner.kill()
            owner.wait(timeout=10)
            if owner.stdout:
                owner.stdout.close()


def test_building_the_router_sweeps(tmp_path: Path) -> None:
    stale = tmp_path / "staging" / "upload-left-by-a-crash"
    stale.mkdir(parents=True)
    age(stale, 3 * 24 * 3600)
    with running_control(tmp_path) as control:
        assert control.staging_leftovers() == []
