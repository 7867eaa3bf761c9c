"""What the prediction log holds while its database refuses writes (stopped, unreachable, its
disk full), oldest first, until the writer stores it: a bounded backlog of parts, one per
refused write, each in a spool file when the folder takes it, else in memory.

Why a spool file first: it costs the writer thread one file write a second (500 requests of
iris: 130 KB, 0.5 ms to encode), it keeps a process's memory flat through a long outage, and
it outlives the process: a worker stopped (or killed) mid-outage leaves its files, and the
next writer that starts over the same folder takes them over (``adopt``), once the lock its
owner held while alive is free. When the folder fails too (the disk FERRY_HOME is on is
full, as SQLite's is then), parts stay in memory: the bounds, in requests and bytes, are over
both.

A part is removed only once stored, so a process killed between the commit and the removal
writes that part twice (at least once, never lost silently); what does not fit the bounds is
refused and the caller counts it dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from ferry.monitoring.predlog.codec import Entry

log = logging.getLogger(__name__)

MAGIC = b"ferry-predlog-spool 2\n"  # 2: entries carry the client's id and key
SUFFIX = ".spool"
_LENGTHS = struct.Struct("<IIi")  # a spooled entry: its head, data and matrix sizes (-1: none)
# the memory an entry takes beyond its bytes (tuple, ints, strings: sys.getsizeof of a 1-row
# iris entry and its fields is 724 bytes, 65 of them its data and matrix), so the bytes bound
# holds in memory; in a spool file it takes 257 bytes, encoded at 1 us and read at 2 us
ENTRY_OVERHEAD = 660


def entry_size(entry: Entry) -> int:
    return ENTRY_OVERHEAD + len(entry.data) + len(entry.matrix or b"")


def encode(entries: list[Entry]) -> bytes:
    """A spool file's bytes: the magic line, then per entry its sizes, its head (the plain
    fields as JSON, its columns last), data and matrix."""
    out = [MAGIC]
    for entry in entries:
        head = orjson.dumps(
            (
                entry.model, entry.version, entry.key, entry.request_id, entry.protocol,
                entry.status, entry.error_code, entry.rows, entry.latency, entry.principal,
                entry.at_us, entry.client_id, entry.client_key, entry.columns,
            )
        )  # fmt: skip
        matrix = entry.matrix
        out.append(_LENGTHS.pack(len(head), len(entry.data), -1 if matrix is None else len(matrix)))
        out.append(head)
        out.append(entry.data)
        if matrix is not None:
            out.append(matrix)
    return b"".join(out)


def decode(blob: bytes) -> list[Entry]:
    """The entries of a spool file; ValueError when it is not one, or was cut short."""
    if not blob.startswith(MAGIC):
        raise ValueError("not a prediction log spool file")
    entries: list[Entry] = []
    at = len(MAGIC)
    try:
        while at < len(blob):
            head_size, data_size, matrix_size = _LENGTHS.unpack_from(blob, at)
            at += _LENGTHS.size
            *head, columns = orjson.loads(blob[at : at + head_size])
            at += head_size
            data = blob[at : at + data_size]
            at += data_size
            matrix = None if matrix_size < 0 else blob[at : at + matrix_size]
            at += max(matrix_size, 0)
            names = None if columns is None else tuple(columns)
            entries.append(Entry._make([*head, data, matrix, names]))
    except (struct.error, TypeError) as exc:
        raise ValueError(f"spool file cut short: {exc}") from exc
    if at != len(blob):
        raise ValueError("spool file cut short")
    return entries


@dataclass(slots=True)
class _Part:
    count: int
    size: int
    entries: list[Entry] | None = None  # held in memory, or
    path: Path | None = None  # in this spool file


class Backlog:
    """Parts the store refused, oldest first; at most ``max_rows`` requests and ``max_bytes``
    in all. One per writer thread (not thread-safe); ``folder`` None keeps them in memory."""

    def __init__(self, folder: Path | None, *, max_rows: int, max_bytes: int) -> None:
        self.folder = folder
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows = 0
        self.bytes = 0
        self._parts: deque[_Part] = deque()
        self._head: list[Entry] | None = None  # the oldest part, read once
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._sequence = 0
        self._lock: IO[bytes] | None = None
        self._spool_failed = False

    def __len__(self) -> int:
        return self.rows

    @property
    def spooled_rows(self) -> int:
        return sum(part.count for part in self._parts if part.path is not None)

    @property
    def oldest_count(self) -> int:
        return self._parts[0].count if self._parts else 0

    def hold(self, entries: list[Entry]) -> int:
        """Keep as many of ``entries`` as the bounds allow, oldest first; how many did not fit."""
        rows_left, bytes_left = self.max_rows - self.rows, self.max_bytes - self.bytes
        kept, size = 0, 0
        for entry in entries[: max(rows_left, 0)]:
            grown = size + entry_size(entry)
            if grown > bytes_left:
                break
            kept, size = kept + 1, grown
        if kept:
            part = entries[:kept]
            path = self._spool(part)
            self._parts.append(_Part(kept, size, None if path else part, path))
            self.rows += kept
            self.bytes += size
        return len(entries) - kept

    def oldest(self) -> list[Entry]:
        """The oldest part's entries; ValueError or OSError when its file cannot be read (the
        caller counts them lost and ``release``s it)."""
        if self._head is None:
            part = self._parts[0]
            if part.entries is not None:
                self._head = part.entries
            else:
                assert part.path is not None
                self._head = decode(part.path.read_bytes())
        return self._head

    def release(self) -> None:
        """The oldest part is stored (or lost): forget it, and remove its file."""
        part = self._parts.popleft()
        self._head = None
        self.rows -= part.count
        self.bytes -= part.size
        if part.path is not None:
            part.path.unlink(missing_ok=True)

    def _spool(self, entries: list[Entry]) -> Path | None:
        """``entries`` in a new spool file (whole or not at all), or None when the folder
        cannot take it."""
        if self.folder is None:
            return None
        self._sequence += 1
        path = self.folder / f"{self._token}-{self._sequence:09d}{SUFFIX}"
        partial = path.with_name(f".{path.name}.tmp")
        try:
            self._hold_lock()
            _write_private(partial, encode(entries))
            os.replace(partial, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if not self._spool_failed:
                self._spool_failed = True
                log.warning(
                    "prediction log: cannot spool to %s (%s); holding requests in memory",
                    self.folder,
                    exc.strerror or exc,
                )
            return None
        if self._spool_failed:
            self._spool_failed = False
            log.warning("prediction log: spooling to %s again", self.folder)
        return path

    # --- files of earlier processes -----------------------------------------------------------
    def _hold_lock(self) -> None:
        """The lock that tells other writers this process's spool files are not orphans."""
        if self._lock is not None or self.folder is None:
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # requests' inputs inside
        path = self.folder / f"{self._token}.lock"
        for _ in range(100):
            lock = path.open("ab")
            # another writer may be checking it, and remove it as a dead writer's: then the
            # lock held is on a file no longer under this name, so take a new one
            if _try_lock(lock) and _same_file(lock, path):
                self._lock = lock
                return
            lock.close()
            time.sleep(0.01)
        raise OSError(f"cannot lock {path}")  # pragma: no cover

    def adopt(self) -> int:
        """Take over the spool files of writers that are gone (their lock is free), oldest
        first, ahead of this one's; how many requests they hold."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        taken: list[_Part] = []
        try:
            names = [p.name for p in self.folder.iterdir()]
            tokens = {n.rsplit("-", 1)[0] for n in names if n.endswith(SUFFIX)}
            tokens |= {n.removesuffix(".lock") for n in names if n.endswith(".lock")}
            for token in sorted(tokens - {self._token}):
                taken.extend(self._adopt(token))
        except OSError as exc:
            log.warning("prediction log: cannot take over spool files in %s: %s", self.folder, exc)
        for part in reversed(taken):
            self._parts.appendleft(part)
            self.rows += part.count
            self.bytes += part.size
        return sum(part.count for part in taken)

    def _adopt(self, token: str) -> list[_Part]:
        """The spool files of ``token``'s writer, renamed as this one's, if it is gone."""
        assert self.folder is not None
        lock_path = self.folder / f"{token}.lock"
        lock: IO[bytes] | None = None
        if lock_path.exists():
            lock = lock_path.open("ab")
            if not _try_lock(lock) or not _same_file(lock, lock_path):
                lock.close()  # its writer is alive (or another took over): its files are its own
                return []
        try:
            parts = []
            for path in sorted(self.folder.glob(f"{token}-*{SUFFIX}")):
                self._hold_lock()  # before a file is named as this writer's
                self._sequence += 1
                mine = self.folder / f"{self._token}-{self._sequence:09d}{SUFFIX}"
                try:
                    os.rename(path, mine)  # atomic: of two adopters, one gets each file
                except FileNotFoundError:
                    continue
                try:
                    entries = decode(mine.read_bytes())
                except ValueError as exc:
                    log.error("prediction log: removing unreadable spool file %s: %s", path, exc)
                    mine.unlink(missing_ok=True)
                    continue
                size = sum(map(entry_size, entries))
                parts.append(_Part(len(entries), size, path=mine))
            lock_path.unlink(missing_ok=True)
            return parts
        finally:
            if lock is not None:
                lock.close()

    def close(self) -> None:
        """Stop holding the lock: files left are the next writer's to take over."""
        if self._lock is None:
            return
        if self.folder is not None and not any(part.path for part in self._parts):
            (self.folder / f"{self._token}.lock").unlink(missing_ok=True)
        self._lock.close()
        self._lock = None


def _write_private(path: Path, data: bytes) -> None:
    """``data`` in a new file only its owner reads: logged inputs may be personal data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _same_file(file: IO[bytes], path: Path) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(file.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _try_lock(file: IO[bytes]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - no flock: a file is its writer's alone
        return True
    import fcntl

    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
