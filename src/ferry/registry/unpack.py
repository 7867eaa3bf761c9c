"""Bundle archives (``.tar.gz``, ``.tgz``, ``.tar``, bzip2 and xz too) unpacked within bounds.

An uploaded archive is the caller's data, and a small one can expand without end: a 2 KB tar
with a sparse 6 GiB member, 1 GiB of zeros gzipped to 1 MB, 200,000 empty entries (issue 13
measured 64 s, 26 s and 121 s of server time, each registered). So the limits count what is
actually done, never what a header claims: the bytes written to disk (a sparse hole is
written as the zeros it stands for), the entries seen, each file's bytes, the decompressed
stream read for headers (a pax header or a sparse map is read into memory by ``tarfile``) and
the wall time. Past a limit the extraction stops at once (at most the limit is written) and
its folder is removed: ``PayloadTooLarge`` (413) for too much, ``BundleError`` (422) for an
archive that is not a plain tree of files (links, devices, unsafe or clashing names).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ferry.errors import BundleError, PayloadTooLarge
from ferry.model.manifest import MANIFEST_FILE
from ferry.registry.bundles import check_relative_path, sibling

MIB = 1024 * 1024
GIB = 1024 * MIB
_CHUNK = MIB
# no tar header (pax record, GNU long name, sparse map block) is legitimately this long: one
# read past it is an attempt to make tarfile hold it in memory
MAX_HEADER_READ = 16 * MIB
# decompressed bytes an entry may take beyond its file data: its header blocks, a pax record
# with a long name, a sparse map, padding to 512 bytes. Real entries take 512-3,072 bytes.
HEADER_ALLOWANCE = 64 * 1024


@dataclass(frozen=True, slots=True)
class UnpackLimits:
    """What one archive may cost. The defaults (``FERRY_UNPACK_*``, config/settings.py) fit the
    2 GiB upload limit: model weights barely compress (float32 arrays gzip to 90-95 % of their
    size), so a full upload unpacks to about 2.2 GiB, well within 4 GiB."""

    max_bytes: int = 4 * GIB  # everything written
    max_file_bytes: int = 4 * GIB  # one file (an operator may set it lower than the total)
    # a bundle holds a manifest and a model file or an MLflow/ONNX folder: tens of entries, so
    # 10,000 leaves 100x room. Creating an empty file took 1.3 ms on the shared 2-core test
    # machine (tarfile's header parsing 0.36 ms), so the worst case is about 17 s, in time
    max_entries: int = 10_000
    # writing 4 GiB takes 20 s at 200 MB/s (SSD) and 40 s on a 100 MB/s disk: 3x room
    max_seconds: float = 120.0
    # written bytes per archive byte, past ``ratio_floor``: text models (XGBoost JSON, tree
    # pickles) compress 5-10x, zeros and sparse holes 1,000x and more
    max_ratio: float = 100.0
    ratio_floor: int = 64 * MIB

    def total_for(self, archive_bytes: int) -> int:
        """The bytes an archive of ``archive_bytes`` may unpack to."""
        by_ratio = max(self.ratio_floor, int(archive_bytes * self.max_ratio))
        return min(self.max_bytes, by_ratio)


class _Budget:
    """What the extraction has used so far, checked against the limits as it goes."""

    def __init__(self, limits: UnpackLimits | None, archive_bytes: int, field: str) -> None:
        self.limits = limits
        self.field = field
        self.total = None if limits is None else limits.total_for(archive_bytes)
        self.deadline = None if limits is None else time.monotonic() + limits.max_seconds
        self.archive_bytes = archive_bytes
        self.written = 0
        self.entries = 0
        self.stream = 0  # decompressed bytes read from the archive

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            assert self.limits is not None
            raise PayloadTooLarge(
                f"unpacking the {self.field} archive took longer than "
                f"{self.limits.max_seconds:g} s; send fewer or smaller files",
                field=self.field,
                limit_seconds=self.limits.max_seconds,
            )

    def entry(self) -> None:
        self.entries += 1
        if self.limits is not None and self.entries > self.limits.max_entries:
            raise PayloadTooLarge(
                f"the {self.field} archive has more than {self.limits.max_entries} entries",
                field=self.field,
                limit=self.limits.max_entries,
            )
        self.check_time()

    def read(self, size: int) -> None:
        self.stream += size
        if self.limits is None:
            return
        headers = self.stream - self.written
        if size > MAX_HEADER_READ or headers > HEADER_ALLOWANCE * (self.entries + 1) + 2 * _CHUNK:
            raise PayloadTooLarge(
                f"the {self.field} archive's headers are larger than any real archive's",
                field=self.field,
            )
        self.check_time()

    def write(self, name: str, file_bytes: int, size: int) -> None:
        """Room for ``size`` more bytes of entry ``name`` (``file_bytes`` written so far)."""
        if self.limits is None or self.total is None:
            self.written += size
            return
        if file_bytes + size > self.limits.max_file_bytes:
            raise PayloadTooLarge(
                f"archive entry {name!r} unpacks to more than {self.limits.max_file_bytes} bytes",
                field=self.field,
                entry=name,
                limit=self.limits.max_file_bytes,
            )
        if self.written + size > self.total:
            ratio = (
                ""
                if self.total == self.limits.max_bytes
                else (f" ({self.limits.max_ratio:g} times the {self.archive_bytes} bytes sent)")
            )
            raise PayloadTooLarge(
                f"the {self.field} archive unpacks to more than {self.total} bytes{ratio}",
                field=self.field,
                limit=self.total,
            )
        self.written += size


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...


class _Counted:
    """The decompressed tar stream, every read and forward seek counted against the budget."""

    def __init__(self, inner: _Source, budget: _Budget) -> None:
        self.inner = inner
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = MAX_HEADER_READ + 1  # tarfile never reads to the end; refuse if it tries
        self.budget.read(size)
        data = self.inner.read(size)
        self.budget.stream += len(data) - size  # count what came, not what was asked
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        here = self.inner.tell()
        target = offset if whence == os.SEEK_SET else here + offset
        if target > here:
            self.budget.read(target - here)
        return self.inner.seek(target)

    def tell(self) -> int:
        return self.inner.tell()


def unpack_archive(
    archive: Path,
    dest: Path,
    *,
    limits: UnpackLimits | None = None,
    field: str = "bundle",
) -> Path:
    """Extract a bundle archive into the new folder ``dest``: all of it, or nothing.

    Only regular files and folders with safe relative paths are accepted (no links, devices,
    absolute paths, ``..``, or a name used twice or as both a file and a folder). Messages name
    entries as the archive does, never a path on this machine. ``field`` names the upload part.
    """
    if dest.exists():
        raise BundleError(f"{dest} already exists", path=str(dest))
    staging = sibling(dest, "tmp")
    budget = _Budget(limits, archive.stat().st_size, field)
    try:
        staging.mkdir(parents=True)
        with archive.open("rb") as raw:
            plain = _decompressed(raw)
            try:
                counted = _Counted(plain, budget)
                with tarfile.open(fileobj=counted, mode="r:") as tar:  # type: ignore[call-overload]
                    _extract(tar, staging, budget)
            finally:
                plain.close()
        os.replace(staging, dest)
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not _is_format_error(exc):
            raise
        raise BundleError(
            f"the {field} part is not a readable tar archive: {_describe(exc)}", field=field
        ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _extract(tar: tarfile.TarFile, root: Path, budget: _Budget) -> None:
    files: set[str] = set()
    folders: set[str] = set()
    while True:
        member = tar.next()
        if member is None:
            return
        budget.entry()
        name = (
            member.name.removeprefix("./").rstrip("/")
            if member.isdir()
            else (member.name.removeprefix("./"))
        )
        if member.isdir() and name in ("", "."):
            continue
        if not member.isfile() and not member.isdir():
            raise BundleError(
                f"archive entry {member.name!r} is not a regular file or folder",
                field=budget.field,
                entry=member.name,
            )
        if name != MANIFEST_FILE:
            check_relative_path(name)
        _claim(name, member.isdir(), files, folders, budget.field)
        target = root.joinpath(*name.split("/"))
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isfile() members always have data
            continue
        with source, target.open("xb") as out:
            _copy(source, out, name, budget)


def _claim(name: str, folder: bool, files: set[str], folders: set[str], field: str) -> None:
    """Refuse a name given twice, or used as a file and as a folder (in either order)."""
    parents = name.split("/")[:-1]
    ancestors = ["/".join(parents[: i + 1]) for i in range(len(parents))]
    clash = next((a for a in ancestors if a in files), None)
    if clash is not None:
        raise BundleError(
            f"archive entry {name!r} is inside {clash!r}, which the archive has as a file",
            field=field,
            entry=name,
        )
    if name in files or (not folder and name in folders):
        what = "a file" if name in files else "a folder"
        raise BundleError(
            f"archive entry {name!r} comes twice (already {what}); an archive names each path once",
            field=field,
            entry=name,
        )
    folders.update(ancestors)
    (folders if folder else files).add(name)


def _copy(source: IO[bytes], out: IO[bytes], name: str, budget: _Budget) -> None:
    """Copy, counting each chunk before it is written (the header's size is never trusted)."""
    written = 0
    while chunk := source.read(_CHUNK):
        budget.write(name, written, len(chunk))
        out.write(chunk)
        written += len(chunk)
        budget.check_time()


def _decompressed(raw: IO[bytes]) -> _Source:
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")
    return raw


def _is_format_error(exc: OSError) -> bool:
    """gzip and bz2 signal a corrupt stream with a bare OSError ("Not a gzipped file",
    "Invalid data stream"), not one with an errno: those are the caller's archive."""
    return exc.errno is None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
