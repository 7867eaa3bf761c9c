"""Queued log entries into chunks: the rows of the ``prediction_chunks`` table.

A chunk holds one model version's requests from one write, in arrival order, up to
CHUNK_REQUESTS requests, CHUNK_BYTES of inputs and outputs, or SPAN_MICROS between arrivals.
Its time-ordered request keys never span more than SPAN_KEYS, so the chunks that may hold a
key are those whose lowest key lies within SPAN_KEYS below it: one index range. Ferry's ids
are UUIDv7 (unix milliseconds in the key's top 48 bits), so a second's requests span a second
of keys. A client's own id is hashed to a random key, which no range holds:
``prediction_ids`` maps such keys to their chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ferry.monitoring.predlog.codec import Entry

KEY_MILLIS_SHIFT = 16  # a UUIDv7 key is 48 bits of unix milliseconds, then 16 more
SPAN_KEYS = 10_000 << KEY_MILLIS_SHIFT  # ten seconds of time-ordered keys
SPAN_MICROS = 10_000_000  # and ten seconds of arrival times
CHUNK_REQUESTS = 2000
CHUNK_BYTES = 4 << 20


@dataclass(slots=True)
class Chunk:
    """A ``prediction_chunks`` row being filled, and the keys it holds of clients' ids."""

    model: str
    version: str
    first_us: int
    last_us: int
    low: int | None = None  # the bounds of its time-ordered keys (None: it has none)
    high: int | None = None
    metas: list[tuple[Any, ...]] = field(default_factory=list)
    datas: list[bytes] = field(default_factory=list)
    size: int = 0
    client_keys: list[int] = field(default_factory=list)

    def fits(self, entry: Entry, timed: bool) -> bool:
        if len(self.metas) >= CHUNK_REQUESTS or self.size + len(entry.data) > CHUNK_BYTES:
            return False
        if max(self.last_us, entry.at_us) - min(self.first_us, entry.at_us) > SPAN_MICROS:
            return False  # a chunk is purged whole: its requests arrived close together
        if not timed or self.low is None or self.high is None:
            return True
        return max(self.high, entry.key) - min(self.low, entry.key) <= SPAN_KEYS

    def add(self, entry: Entry, timed: bool) -> None:
        if timed:
            self.low = entry.key if self.low is None else min(self.low, entry.key)
            self.high = entry.key if self.high is None else max(self.high, entry.key)
        else:
            self.client_keys.append(entry.key)
        self.first_us = min(self.first_us, entry.at_us)
        self.last_us = max(self.last_us, entry.at_us)
        self.metas.append(entry.meta)
        self.datas.append(entry.data)
        self.size += len(entry.data)

    def row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "requests": len(self.metas),
            "first_us": self.first_us,
            "last_us": self.last_us,
            "low_key": self.low,
            "high_key": self.high,
            "meta": orjson.dumps(self.metas).decode(),
            "data": (b"[" + b",".join(self.datas) + b"]").decode(),
        }


def is_time_key(key: int, at_us: int) -> bool:
    """Whether ``key`` is a time-ordered key made within SPAN_KEYS of its request's arrival."""
    return abs((key >> KEY_MILLIS_SHIFT) - at_us // 1000) <= SPAN_KEYS >> KEY_MILLIS_SHIFT


def chunked(entries: Iterable[Entry]) -> list[Chunk]:
    """Chunks holding ``entries``: one per model version, each in arrival order, a new one
    when the last is full or would span more than SPAN_KEYS."""
    done: list[Chunk] = []
    current: dict[tuple[str, str], Chunk] = {}
    for entry in entries:
        timed = is_time_key(entry.key, entry.at_us)
        group = (entry.model, entry.version)
        chunk = current.get(group)
        if chunk is None or not chunk.fits(entry, timed):
            if chunk is not None:
                done.append(chunk)
            chunk = current[group] = Chunk(entry.model, entry.version, entry.at_us, entry.at_us)
        chunk.add(entry, timed)
    done.extend(current.values())
    return done
