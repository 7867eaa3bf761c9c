"""Events to table rows and back: columns as orjson text, encoded as each request is observed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from ferry.model.signature import Batch
from ferry.monitoring.events import PredictionEvent
from ferry.monitoring.predlog.records import LoggedPrediction


def encode_columns(columns: Mapping[str, np.ndarray]) -> str:
    """Columns as JSON lists (orjson writes NaN, in float and object columns, as null).

    ``tolist`` beats orjson's own numpy support on the small arrays most requests carry."""
    return orjson.dumps({name: array.tolist() for name, array in columns.items()}).decode()


def encode_batch(batch: Batch) -> str:
    """The request's inputs as JSON text: rows of numbers as ``{"rows": {"columns": [...],
    "data": [[...], ...]}}``, anything else as columns (``encode_columns``)."""
    matrix = batch.matrix
    if matrix is not None and matrix.ndim == 2:
        # orjson writes the float64 matrix itself (NaN as null) after a header cached per
        # signature: half the cost of listing its columns, on every logged request
        try:
            body = orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError:  # a strided view: orjson takes contiguous arrays only
            pass
        else:
            return (_rows_header(tuple(batch.columns)) + body + b"}}").decode()
    return encode_columns(batch.columns)


@lru_cache(maxsize=256)
def _rows_header(names: tuple[str, ...]) -> bytes:
    return b'{"rows":{"columns":' + orjson.dumps(names) + b',"data":'


COLUMNS = (
    "request_id", "request_key", "model", "version", "protocol", "status", "error_code",
    "rows", "latency", "principal", "at", "inputs", "outputs",
)  # fmt: skip


def request_key(request_id: str) -> int:
    """The indexed 64-bit (signed, as BIGINT) key of a request id.

    For Ferry's own ids (UUIDv7) it is their first 64 bits, time first, so each insert lands
    at the end of the index: with a hash the keys were random, and past a few hundred thousand
    rows SQLite's inserts into that index cost 15 us a row instead of 3 (each one a page
    miss). Any other id (a client's X-Request-ID) is hashed."""
    key = _time_key(request_id)
    return _hashed_key(request_id) if key is None else key


def _time_key(request_id: str) -> int | None:
    """The leading 64 bits of an id shaped like a UUIDv7 in hex (32 digits, version 7), if
    they fit a signed BIGINT. A cheap test of the shape, not a full parse (twice as fast as
    the regular expression on every logged request): any id passing it is keyed the same
    way when written and when looked up, which is all a key needs."""
    if len(request_id) != 32 or request_id[12] != "7":
        return None
    try:
        key = int(request_id[:16], 16)
    except ValueError:
        return None
    return key if 0 <= key < 1 << 63 else None


def lookup_keys(request_id: str) -> list[int]:
    """Keys a logged row with this id may carry: rows logged before ids were time-ordered
    were keyed by the hash whatever the id's shape."""
    key = _time_key(request_id)
    hashed = _hashed_key(request_id)
    return [hashed] if key is None else [key, hashed]


def _hashed_key(request_id: str) -> int:
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def event_values(event: PredictionEvent, *, naive_time: bool) -> tuple[Any, ...]:
    """One ``predictions`` row in ``COLUMNS`` order, ready for the store (``naive_time``: the
    time as SQLite's text, see ``row_time``)."""
    request_id = event.request_id[:128]
    return (
        request_id,
        request_key(request_id),
        event.model,
        event.version,
        event.protocol,
        event.status,
        event.error_code,
        event.rows,
        event.seconds,
        event.principal,
        row_time(event.timestamp, naive_time=naive_time),
        encode_batch(event.inputs) if event.inputs is not None else None,
        encode_columns(event.outputs) if event.outputs is not None else None,
    )


AT = COLUMNS.index("at")


def row_time(timestamp: float, *, naive_time: bool) -> datetime | str:
    """The time as the store takes it: naive UTC text as SQLAlchemy's SQLite DateTime
    stores it (``naive_time``), else an aware datetime."""
    if not naive_time:
        return datetime.fromtimestamp(timestamp, UTC)
    seconds, micros = divmod(round(timestamp * 1_000_000), 1_000_000)
    return f"{_second_text(seconds)}.{micros:06d}"


@lru_cache(maxsize=4)
def _second_text(seconds: int) -> str:
    # one formatting per second of log instead of one per row
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def retime(row: tuple[Any, ...], *, naive_time: bool) -> tuple[Any, ...]:
    """``row`` with its time in the other form (a row encoded for another kind of store)."""
    at = row[AT]
    when = (
        at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if naive_time
        else datetime.fromisoformat(at).replace(tzinfo=UTC)
    )
    return (*row[:AT], when, *row[AT + 1 :])


def event_row(event: PredictionEvent) -> dict[str, Any]:
    """One ``predictions`` row by column name (for ``PredictionStore.insert``)."""
    return dict(zip(COLUMNS, event_values(event, naive_time=False), strict=True))


def decode_columns(text: str | None) -> dict[str, list[Any]] | None:
    """Logged inputs or outputs as lists by column name, whichever form they were written in."""
    if text is None:
        return None
    value: dict[str, Any] = orjson.loads(text)
    rows = value.get("rows")
    if isinstance(rows, dict):  # encode_batch's rows form (a column's value is always a list)
        data = rows["data"]
        return {name: [row[i] for row in data] for i, name in enumerate(rows["columns"])}
    return value


def row_record(row: Mapping[Any, Any]) -> LoggedPrediction:
    return LoggedPrediction(
        request_id=row["request_id"],
        model=row["model"],
        version=row["version"],
        protocol=row["protocol"],
        status=row["status"],
        error_code=row["error_code"],
        rows=row["rows"],
        latency=row["latency"],
        principal=row["principal"],
        at=row["at"],
        inputs=decode_columns(row["inputs"]),
        outputs=decode_columns(row["outputs"]),
    )
