"""The stack image's trimming script: valid shell, every package list filled in, and nothing
that Python or the serving user needs on the removal lists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ferry.packaging.slim import PURGED, PURGED_LAST, slim_script

# what `ferry serve` runs on: never to be removed
NEEDED = (
    "python3.11-minimal", "libpython3.11-stdlib", "libc6", "libssl3", "ca-certificates",
    "tzdata", "coreutils", "dash", "bash", "libstdc++6", "zlib1g", "tar", "base-passwd",
)  # fmt: skip


def test_script_is_valid_shell_with_its_lists_filled(tmp_path: Path) -> None:
    script = slim_script()
    assert "@" not in script.replace("$@", "")
    assert f"purge {' '.join(PURGED)}\n" in script
    assert f"purge {' '.join(PURGED_LAST)}\n" in script
    path = tmp_path / "slim.sh"
    path.write_text(script)
    sh = shutil.which("sh")
    if sh is None:
        pytest.fail("no sh on this machine")
    checked = subprocess.run([sh, "-n", str(path)], capture_output=True, text=True, check=False)  # noqa: S603
    assert checked.returncode == 0, checked.stderr


def test_nothing_serving_needs_is_removed() -> None:
    removed = set(PURGED) | set(PURGED_LAST)
    assert not removed & set(NEEDED)
    # perl's and debconf's users go first, dpkg's diff last
    assert {"perl-base", "debconf", "diffutils"} <= set(PURGED_LAST)
    assert len(removed) == len(PURGED) + len(PURGED_LAST)
