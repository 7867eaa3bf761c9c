"""Events to table rows and back: columns as orjson text, encoded in the writer thread."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
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
    if batch.matrix is not None and batch.matrix.ndim == 2:
        # rows of numbers: the columns are strided views; one transpose lists them all
        body = dict(zip(batch.columns, batch.matrix.T.tolist(), strict=True))
        return orjson.dumps(body).decode()
    return encode_columns(batch.columns)


COLUMNS = (
    "request_id", "request_key", "model", "version", "protocol", "status", "error_code",
    "rows", "latency", "principal", "at", "inputs", "outputs",
)  # fmt: skip


def request_key(request_id: str) -> int:
    """The indexed 64-bit (signed, as BIGINT) hash of a request id."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def event_values(event: PredictionEvent, *, naive_time: bool) -> tuple[Any, ...]:
    """One ``predictions`` row, in ``COLUMNS`` order. ``naive_time``: the time as SQLAlchemy's
    SQLite DateTime stores it (naive UTC text), else an aware datetime."""
    request_id = event.request_id[:128]
    at = datetime.fromtimestamp(event.timestamp, UTC)
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
        at.replace(tzinfo=None).isoformat(" ", "microseconds") if naive_time else at,
        encode_batch(event.inputs) if event.inputs is not None else None,
        encode_columns(event.outputs) if event.outputs is not None else None,
    )


def event_row(event: PredictionEvent) -> dict[str, Any]:
    """One ``predictions`` row by column name (for ``PredictionStore.insert``)."""
    return dict(zip(COLUMNS, event_values(event, naive_time=False), strict=True))


def decode_columns(text: str | None) -> dict[str, list[Any]] | None:
    if text is None:
        return None
    value: dict[str, list[Any]] = orjson.loads(text)
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
