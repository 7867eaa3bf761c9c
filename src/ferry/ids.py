"""Request ids: UUIDv7 (RFC 9562), time first, made without a system call per id.

Every answered request gets one (unless the client sent ``X-Request-ID``); the prediction log
keys its index on their leading bits, which grow with time.
"""

from __future__ import annotations

import os
import threading
import time


class _Noise:
    """Random bits from ``os.urandom``, read 4 KiB at a time. Each ``os.urandom`` call lets go
    of the GIL for its system call, and on a busy server getting it back means waiting while
    the model's thread runs: one call per request cost more than the rest of its logging."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)  # never the parent's bytes again

    def _forget(self) -> None:
        self._pool, self._at = b"", 0

    def take(self, size: int) -> int:
        with self._lock:
            if self._at + size > len(self._pool):
                self._pool, self._at = os.urandom(self.CHUNK), 0
            start = self._at
            self._at += size
            return int.from_bytes(self._pool[start : self._at], "big")


_noise = _Noise()


def time_ordered_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: 48 bits of unix milliseconds first, so the ids
    Ferry makes, and the index keys drawn from them, grow with time."""
    millis = time.time_ns() // 1_000_000
    noise = _noise.take(10)
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (noise >> 68) << 64  # 12 random bits
        | 0b10 << 62  # RFC 4122 variant
        | noise & ((1 << 62) - 1)  # 62 random bits
    )
    return f"{value:032x}"


__all__ = ["time_ordered_id"]
