"""Work folders of the staging root, one per upload or download, and the sweep that removes
what a killed server left there; error messages rewritten to name files as the upload did."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ferry.errors import FerryError

STALE_SECONDS = 24 * 3600.0
CLAIM_PREFIX = ".claim-"
# where an upload's files are staged in its work folder, longest first: a path under one is
# named by what follows (its name in the archive, or the part's file name)
STAGED_FOLDERS = ("src/model", "src/code", "bundle", "parts", "src")


class WorkDir:
    """A folder of ``root`` for one upload or download, owned by this process while it lives.

    The owner holds an exclusive ``flock`` on the folder; the kernel drops it when the process
    dies, however it dies, so ``sweep_staging`` at the next start can tell a dead server's
    folders (unlocked) from those of a live worker beside it (locked) without trusting pids.
    The folder is made under a ``.claim-`` name and renamed once locked, so no sweep ever sees
    it unlocked.
    """

    def __init__(self, root: Path, prefix: str) -> None:
        claim = Path(tempfile.mkdtemp(prefix=f"{CLAIM_PREFIX}{prefix}-", dir=root))
        self._fd: int | None = os.open(claim, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = root / claim.name.removeprefix(CLAIM_PREFIX)
        os.rename(claim, self.path)

    def remove(self) -> None:
        """Delete the folder and let go of it (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sweep_staging(root: Path, *, max_age_seconds: float = STALE_SECONDS) -> int:
    """Remove what a dead server left in ``root``: every folder no live process holds, and
    other entries (files, half-made ``.claim-`` folders) older than any upload lasts. Returns
    how many entries went."""
    cutoff = time.time() - max_age_seconds
    removed = 0
    for entry in root.iterdir() if root.is_dir() else ():
        with contextlib.suppress(OSError):
            folder = entry.is_dir() and not entry.is_symlink()
            if folder and not entry.name.startswith(CLAIM_PREFIX):
                if _owned(entry):
                    continue
            elif entry.lstat().st_mtime >= cutoff:
                continue
            if folder:
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
            removed += 1
    return removed


def _owned(folder: Path) -> bool:
    """Whether a live process holds the folder's lock (this one included)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock taken just now
    return False


def relative_paths(exc: FerryError, work: Path) -> None:
    """Rewrite ``exc``'s message and details in place so they name files as the upload does
    (``model/weights.bin``, ``ferry.yaml``), never the server's staging folder."""
    roots = {str(work), os.path.realpath(work)}
    pattern = re.compile(
        "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True))
        + r"(?:/([^\s'\",:;()\[\]]*))?"
    )

    def relative(match: re.Match[str]) -> str:
        rest = match.group(1) or ""
        for staged in STAGED_FOLDERS:
            if rest == staged or rest.startswith(f"{staged}/"):
                rest = rest[len(staged) + 1 :]
                break
        return rest or "the upload"

    exc.message = pattern.sub(relative, exc.message)
    exc.args = (exc.message,)
    for key, value in exc.details.items():
        if isinstance(value, str):
            exc.details[key] = pattern.sub(relative, value)
