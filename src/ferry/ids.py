"""Request ids: UUIDv7 (RFC 9562), time first, made without a system call per id.

Every answered request gets one, whatever the client sent: it is the prediction log's key,
and its leading bits, which grow with time, key the log's index. A client's own
``X-Request-ID`` is kept beside it (``client_request_id``), never instead of it: a client
chose it, so it may be reused, by the same caller or by another one, and it was 60 KB long
when nothing bounded it.
"""

from __future__ import annotations

import os
import re
import threading
import time

from ferry.forks import reset_after_fork

# What a client's request id may be: what proxies and tracers send (Envoy's and Istio's
# UUIDs, W3C trace ids, Heroku's 20-200 characters), short enough to index and show.
MAX_CLIENT_ID = 128
_CLIENT_ID = re.compile(rf"[A-Za-z0-9._:@+=-]{{1,{MAX_CLIENT_ID}}}")
# Who made a request or a change without credentials (auth off, a public model): the one
# name the audit log, usage rows and the registry's updated_by all record. A word, not "-":
# usage CSVs and audit exports are read by people who would not guess what "-" means.
ANONYMOUS = "anonymous"


class _Noise:
    """Random bits from ``os.urandom``, read 4 KiB at a time. Each ``os.urandom`` call lets go
    of the GIL for its system call, and on a busy server getting it back means waiting while
    the model's thread runs: one call per request cost more than the rest of its logging."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()
        reset_after_fork(self, "_forget")  # never the parent's bytes again

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


def client_request_id(value: str | None) -> str | None:
    """A client's ``X-Request-ID`` if it is one Ferry keeps (1-128 of ``A-Z a-z 0-9 . _ : @
    + = -``), else None: an id that is too long or holds other characters is ignored, and
    the request is answered as if it had sent none. Refusing it with a 400 would fail
    predictions over a tracing header that a proxy, not the caller, may have added."""
    if value is None or _CLIENT_ID.fullmatch(value) is None:
        return None
    return value


__all__ = ["ANONYMOUS", "MAX_CLIENT_ID", "client_request_id", "time_ordered_id"]
