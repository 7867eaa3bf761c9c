"""Queued log entries into chunks: the rows of the ``prediction_chunks`` table.

A chunk holds one model version's requests from one write, in arrival order, up to
CHUNK_REQUESTS requests or CHUNK_BYTES of inputs and outputs. Its request keys never span
more than SPAN_KEYS, so the chunks that may hold a key are those whose lowest key lies within
SPAN_KEYS below it: one index range. Ferry's ids are UUIDv7 (unix milliseconds in the key's
top 48 bits), so a second's requests span a second of keys; a client's own id is hashed to a
key far from its request's time and gets a chunk of its own rather than stretching one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ferry.monitoring.predlog.codec import Entry

KEY_MILLIS_SHIFT = 16  # a UUIDv7 key is 48 bits of unix milliseconds, then 16 more
SPAN_KEYS = 10_000 << KEY_MILLIS_SHIFT  # ten seconds of time-ordered keys
CHUNK_REQUESTS = 2000
CHUNK_BYTES = 4 << 20


@dataclass(slots=True)
class _Open:
    model: str
    version: str
    low: int
    high: int
    first_us: int
    last_us: int
    metas: list[tuple[Any, ...]] = field(default_factory=list)
    datas: list[bytes] = field(default_factory=list)
    size: int = 0

    def fits(self, entry: Entry) -> bool:
        return (
            len(self.metas) < CHUNK_REQUESTS
            and self.size + len(entry.data) <= CHUNK_BYTES
            and max(self.high, entry.key) - min(self.low, entry.key) <= SPAN_KEYS
        )

    def add(self, entry: Entry) -> None:
        self.low = min(self.low, entry.key)
        self.high = max(self.high, entry.key)
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


def _opened(entry: Entry) -> _Open:
    chunk = _Open(entry.model, entry.version, entry.key, entry.key, entry.at_us, entry.at_us)
    chunk.add(entry)
    return chunk


def is_time_key(key: int, at_us: int) -> bool:
    """Whether ``key`` is a time-ordered key made within SPAN_KEYS of its request's arrival."""
    return abs((key >> KEY_MILLIS_SHIFT) - at_us // 1000) <= SPAN_KEYS >> KEY_MILLIS_SHIFT


def chunk_rows(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """``prediction_chunks`` rows holding ``entries``, each chunk's requests in arrival order."""
    done: list[_Open] = []
    current: dict[tuple[str, str], _Open] = {}
    for entry in entries:
        if not is_time_key(entry.key, entry.at_us):
            done.append(_opened(entry))  # a client's id: a chunk of its own
            continue
        group = (entry.model, entry.version)
        chunk = current.get(group)
        if chunk is not None and chunk.fits(entry):
            chunk.add(entry)
            continue
        if chunk is not None:
            done.append(chunk)
        current[group] = _opened(entry)
    done.extend(current.values())
    return [chunk.row() for chunk in done]
