"""Events to table rows and back: columns as orjson text, encoded in the writer thread."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from ferry.model.signature import Batch
from ferry.monitoring.events import PredictionEvent
from ferry.monitoring.predlog.records import LoggedPrediction

_NUMPY_KINDS = frozenset("biuf")


def _column(array: np.ndarray) -> Any:
    """orjson writes contiguous numeric arrays itself; anything else goes through lists."""
    if array.dtype.kind in _NUMPY_KINDS and array.flags.c_contiguous:
        return array
    values = array.tolist()
    if array.dtype.kind == "O":
        return [None if isinstance(v, float) and v != v else v for v in values]
    return values


def encode_columns(columns: Mapping[str, np.ndarray]) -> str:
    return orjson.dumps(
        {name: _column(np.asarray(a)) for name, a in columns.items()},
        option=orjson.OPT_SERIALIZE_NUMPY,
    ).decode()


def encode_batch(batch: Batch) -> str:
    if batch.matrix is not None and batch.matrix.ndim == 2:
        # rows of numbers: the columns are strided views; one transpose lists them all
        names = list(batch.columns)
        body = dict(zip(names, batch.matrix.T.tolist(), strict=True))
        return orjson.dumps(body).decode()
    return encode_columns(batch.columns)


def event_row(event: PredictionEvent) -> dict[str, Any]:
    return {
        "request_id": event.request_id[:128],
        "model": event.model,
        "version": event.version,
        "protocol": event.protocol,
        "status": event.status,
        "error_code": event.error_code,
        "rows": event.rows,
        "latency": event.seconds,
        "principal": event.principal,
        "at": datetime.fromtimestamp(event.timestamp, UTC),
        "inputs": encode_batch(event.inputs) if event.inputs is not None else None,
        "outputs": encode_columns(event.outputs) if event.outputs is not None else None,
    }


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
