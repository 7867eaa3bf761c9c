"""Events to log entries and stored requests back to records: inputs and outputs as orjson
bytes, encoded as each request is observed; the rest a small tuple (a chunk's ``meta``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, cast

import numpy as np
import orjson

from ferry.db.events import PredictionEvent
from ferry.model.signature import Batch
from ferry.monitoring.predlog.records import LoggedPrediction


def encode_columns(columns: Mapping[str, np.ndarray]) -> bytes:
    """Columns as JSON lists (orjson writes NaN, in float and object columns, as null).

    ``tolist`` beats orjson's own numpy support on the small arrays most requests carry."""
    return orjson.dumps({name: array.tolist() for name, array in columns.items()})


def encode_batch(batch: Batch) -> bytes:
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
            return _rows_header(tuple(batch.columns)) + body + b"}}"
    return encode_columns(batch.columns)


@lru_cache(maxsize=256)
def _rows_header(names: tuple[str, ...]) -> bytes:
    return b'{"rows":{"columns":' + orjson.dumps(names) + b',"data":'


def request_key(request_id: str) -> int:
    """The 64-bit (signed, as BIGINT) key of a request id, which finds its chunk.

    For Ferry's own ids (UUIDv7) it is their first 64 bits, time first, so the requests a
    writer gathers in a second have keys within a second of each other and share a chunk
    (``chunks.py``). Any other id (a client's X-Request-ID, kept beside Ferry's own, or the
    key of a request logged when a client's id replaced Ferry's) is hashed."""
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


# a request's details in a chunk's ``meta``, in this order (``at_us``: unix microseconds;
# ``client_id``: the caller's X-Request-ID, absent from metas written before it was kept)
META = (
    "request_id", "protocol", "status", "error_code", "rows", "latency", "principal", "at_us",
    "client_id",
)  # fmt: skip
REQUEST_ID, STATUS, AT_US = META.index("request_id"), META.index("status"), META.index("at_us")
CLIENT_ID = META.index("client_id")
_FLOAT64 = np.dtype(np.float64)


class Entry(NamedTuple):
    """One observed request as the log's queue holds it until the writer stores it: a flat
    tuple of plain values (one object for the collector to track, not two)."""

    model: str
    version: str
    key: int  # request_key(request_id)
    request_id: str  # from here to at_us: the request's meta, in META order
    protocol: str
    status: int
    error_code: str | None
    rows: int
    latency: float
    principal: str | None
    at_us: int
    client_id: str | None  # the caller's own id: searchable, never the key
    client_key: int | None  # request_key(client_id): ``prediction_ids`` finds its chunk
    data: bytes  # [inputs, outputs] as JSON; only the outputs when ``matrix`` holds the inputs
    matrix: bytes | None  # inputs that are rows of numbers: their float64s, row after row
    columns: tuple[str, ...] | None  # the names of ``matrix``'s columns


# where an Entry holds its meta, the fields chunks.py writes in META order
META_FIELDS = slice(Entry._fields.index(META[0]), Entry._fields.index(META[-1]) + 1)


def event_entry(event: PredictionEvent) -> Entry:
    """The request as the log stores it (the writer thread makes these, a second's requests
    in a loop). Rows of numbers are kept as their raw float64s (``tobytes``): the chunk
    turns all of them into JSON in one call (``chunks.py``), a third of the cost of one
    orjson call a request."""
    request_id = event.request_id[:128]
    client_id = event.client_request_id
    at_us = round(event.timestamp * 1_000_000)
    outputs = encode_columns(event.outputs) if event.outputs is not None else b"null"
    batch = event.inputs
    matrix = batch.matrix if batch is not None else None
    if matrix is not None and matrix.ndim == 2 and matrix.dtype == _FLOAT64:
        raw: bytes | None = matrix.tobytes()
        names: tuple[str, ...] | None = tuple(batch.columns)  # type: ignore[union-attr]
        data = outputs
    else:
        raw = names = None
        inputs = encode_batch(batch) if batch is not None else b"null"
        data = b"[" + inputs + b"," + outputs + b"]"
    return tuple.__new__(
        Entry,
        (
            event.model, event.version, request_key(request_id), request_id, event.protocol,
            event.status, event.error_code, event.rows, event.seconds, event.principal, at_us,
            client_id, None if client_id is None else _hashed_key(client_id), data, raw, names,
        ),
    )  # fmt: skip


def micros(when: datetime) -> int:
    """A time as unix microseconds (naive means UTC), exactly."""
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(at_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=at_us)


def columns_of(value: Any) -> dict[str, list[Any]] | None:
    """Logged inputs or outputs (parsed JSON) as lists by column name, whichever form they
    were written in."""
    if value is None:
        return None
    rows = value.get("rows")
    if isinstance(rows, dict):  # encode_batch's rows form (a column's value is always a list)
        data = rows["data"]
        return {name: [row[i] for row in data] for i, name in enumerate(rows["columns"])}
    return cast(dict[str, list[Any]], value)


def stored_requests(data: Any) -> list[list[Any]]:
    """A chunk's parsed ``data`` as ``[inputs, outputs]`` per request: a list of them, or
    ``{"matrices": [{"columns", "data"}, ...], "requests": [...]}`` where a request's inputs
    ``[i, n]`` are the next ``n`` rows of matrix ``i`` (see ``chunks.py``)."""
    if isinstance(data, list):
        return data
    taken = [0] * len(data["matrices"])
    requests: list[list[Any]] = []
    for inputs, outputs in data["requests"]:
        if isinstance(inputs, list):
            index, n = inputs
            inputs = _matrix_rows(data, index, taken[index], n)
            taken[index] += n
        requests.append([inputs, outputs])
    return requests


def stored_request(data: Any, index: int) -> list[Any]:
    """Request ``index``'s ``[inputs, outputs]`` of a chunk's parsed ``data``, without
    rebuilding the others' (``stored_requests``)."""
    if isinstance(data, list):
        return cast(list[Any], data[index])
    inputs, outputs = data["requests"][index]
    if isinstance(inputs, list):
        matrix, n = inputs
        start = sum(
            earlier[0][1]
            for earlier in data["requests"][:index]
            if isinstance(earlier[0], list) and earlier[0][0] == matrix
        )
        inputs = _matrix_rows(data, matrix, start, n)
    return [inputs, outputs]


def _matrix_rows(data: Any, matrix: int, start: int, n: int) -> dict[str, Any]:
    """Rows ``start`` to ``start + n`` of a chunk's matrix ``matrix``, in the rows form."""
    found = data["matrices"][matrix]
    return {"rows": {"columns": found["columns"], "data": found["data"][start : start + n]}}


def record_of(model: str, version: str, meta: list[Any], data: list[Any]) -> LoggedPrediction:
    """A stored request (its ``meta`` and ``[inputs, outputs]``) as a record."""
    request_id, protocol, status, error_code, rows, latency, principal, at_us = meta[:CLIENT_ID]
    inputs, outputs = data
    return LoggedPrediction(
        request_id=request_id,
        model=model,
        version=version,
        protocol=protocol,
        status=status,
        error_code=error_code,
        rows=rows,
        latency=latency,
        principal=principal,
        at=from_micros(at_us),
        inputs=columns_of(inputs),
        outputs=columns_of(outputs),
        client_request_id=client_id_of(meta),
    )


def client_id_of(meta: list[Any]) -> str | None:
    """A stored request's client id (None for metas written before client ids were kept)."""
    return meta[CLIENT_ID] if len(meta) > CLIENT_ID else None
