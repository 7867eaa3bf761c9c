"""Queued log entries into chunks: the rows of the ``prediction_chunks`` table.

A chunk holds one model version's requests from one write, in arrival order, up to
CHUNK_REQUESTS requests, CHUNK_BYTES of inputs and outputs, or SPAN_MICROS between arrivals.
Its time-ordered request keys never span more than SPAN_KEYS, so the chunks that may hold a
key are those whose lowest key lies within SPAN_KEYS below it: one index range. Ferry's ids
are UUIDv7 (unix milliseconds in the key's top 48 bits), so a second's requests span a second
of keys. A client's own id (kept beside Ferry's) is hashed to a random key, which no range
holds: ``prediction_ids`` maps such keys to their chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import numpy as np
import orjson

from ferry.monitoring.predlog.codec import META_FIELDS, Entry

KEY_MILLIS_SHIFT = 16  # a UUIDv7 key is 48 bits of unix milliseconds, then 16 more
SPAN_KEYS = 10_000 << KEY_MILLIS_SHIFT  # ten seconds of time-ordered keys
SPAN_MICROS = 10_000_000  # and ten seconds of arrival times
# a lookup by id parses the chunk that holds it: 500 requests take about 2 ms, and a write
# of 500 costs the writer one insert (0.1 us a request more than 2000 would)
CHUNK_REQUESTS = 500
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
    entries: list[Entry] = field(default_factory=list)
    size: int = 0
    client_keys: list[int] = field(default_factory=list)

    def fits(self, entry: Entry, timed: bool) -> bool:
        if len(self.entries) >= CHUNK_REQUESTS or self.size + _size(entry) > CHUNK_BYTES:
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
        if entry.client_key is not None:
            self.client_keys.append(entry.client_key)
        self.first_us = min(self.first_us, entry.at_us)
        self.last_us = max(self.last_us, entry.at_us)
        self.entries.append(entry)
        self.size += _size(entry)

    def row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "requests": len(self.entries),
            "first_us": self.first_us,
            "last_us": self.last_us,
            "low_key": self.low,
            "high_key": self.high,
            "meta": orjson.dumps([entry[META_FIELDS] for entry in self.entries]).decode(),
            "data": _data(self.entries).decode(),
        }


def _size(entry: Entry) -> int:
    """About the bytes ``entry`` adds to a chunk (a float64 takes about 3 times its 8 bytes
    as JSON)."""
    return len(entry.data) + 3 * len(entry.matrix or b"")


def _data(entries: list[Entry]) -> bytes:
    """The chunk's ``data``: ``[[inputs, outputs], ...]``, or, when rows of numbers came as
    raw float64s, ``{"matrices": [{"columns", "data"}, ...], "requests": [...]}``, each
    set of columns' rows stacked and written by orjson in one call, a request's inputs
    given as ``[matrix, rows]`` (``codec.stored_requests`` reads both)."""
    if all(entry.matrix is None for entry in entries):
        return b"[" + b",".join([entry.data for entry in entries]) + b"]"
    stacks: dict[tuple[str, ...], tuple[int, list[bytes]]] = {}  # columns: (index, rows)
    pieces = []
    for entry in entries:
        if entry.matrix is None or entry.columns is None:
            pieces.append(entry.data)
            continue
        index, stack = stacks.setdefault(entry.columns, (len(stacks), []))
        rows = len(entry.matrix) // (8 * len(entry.columns) or 1)
        stack.append(entry.matrix)
        pieces.append(b"[[%d,%d]," % (index, rows) + entry.data + b"]")
    matrices = []
    for columns, (_, stack) in stacks.items():
        values = np.frombuffer(b"".join(stack), dtype=np.float64).reshape(-1, len(columns))
        matrices.append(
            b'{"columns":' + orjson.dumps(columns) + b',"data":'
            + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY) + b"}"
        )  # fmt: skip
    return b'{"matrices":[' + b",".join(matrices) + b'],"requests":[' + b",".join(pieces) + b"]}"


def is_time_key(key: int, at_us: int) -> bool:
    """Whether ``key`` is a time-ordered key made within SPAN_KEYS of its request's arrival."""
    return abs((key >> KEY_MILLIS_SHIFT) - at_us // 1000) <= SPAN_KEYS >> KEY_MILLIS_SHIFT


def chunked(entries: Iterable[Entry]) -> list[Chunk]:
    """Chunks holding ``entries``: per model version, in arrival order, CHUNK_REQUESTS at a
    time, each split further only where it would break a bound.

    This runs on the serving core, for every logged request: a second's requests of one
    version are checked against the bounds as a whole (``_whole``, builtins over the
    columns) and only a part that breaks one is built entry by entry (``_one_by_one``, about
    3 us an entry in Python: as much as encoding it)."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.model, entry.version), []).append(entry)
    done: list[Chunk] = []
    for group in groups.values():
        for start in range(0, len(group), CHUNK_REQUESTS):
            part = group[start : start + CHUNK_REQUESTS]
            whole = _whole(part)
            done.extend(_one_by_one(part) if whole is None else [whole])
    return done


def _whole(part: list[Entry]) -> Chunk | None:
    """``part`` (one version's, at most CHUNK_REQUESTS) as one chunk, if it keeps the bounds:
    its clients' ids aside, keys within SPAN_KEYS; arrivals within SPAN_MICROS; CHUNK_BYTES."""
    keys = [entry.key for entry in part]
    ats = [entry.at_us for entry in part]
    first, last = min(ats), max(ats)
    size = sum(map(_size, part))
    if last - first > SPAN_MICROS or size > CHUNK_BYTES:
        return None
    bounds: tuple[int, int] | tuple[None, None] = (min(keys), max(keys))
    client_keys: list[int] = []
    if max(keys) - min(keys) > SPAN_KEYS:  # clients' ids among them?
        near = [is_time_key(key, at) for key, at in zip(keys, ats, strict=True)]
        timed = list(compress(keys, near))
        if timed and max(timed) - min(timed) > SPAN_KEYS:
            return None  # keys made far apart: split where they jump
        client_keys = [key for key, ok in zip(keys, near, strict=True) if not ok]
        bounds = (min(timed), max(timed)) if timed else (None, None)
    client_keys.extend(entry.client_key for entry in part if entry.client_key is not None)
    low, high = bounds
    return Chunk(part[0].model, part[0].version, first, last, low, high, part, size, client_keys)


def _one_by_one(part: list[Entry]) -> list[Chunk]:
    done: list[Chunk] = []
    chunk: Chunk | None = None
    for entry in part:
        timed = is_time_key(entry.key, entry.at_us)
        if chunk is None or not chunk.fits(entry, timed):
            if chunk is not None:
                done.append(chunk)
            chunk = Chunk(entry.model, entry.version, entry.at_us, entry.at_us)
        chunk.add(entry, timed)
    if chunk is not None:
        done.append(chunk)
    return done
