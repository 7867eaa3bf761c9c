"""What every protocol shares: bounded body reading, JSON/CSV decoding, running the model."""

from __future__ import annotations

import csv
import io
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from ferry.config.logging import bind_model, request_id_var
from ferry.db.events import PredictionEvent
from ferry.errors import EmptyBatch, FerryError, MalformedBody, PayloadTooLarge, PredictionFailed
from ferry.ids import client_request_id, time_ordered_id
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch, Signature
from ferry.model.validation import batch_from_columns
from ferry.security.identity import principal_id
from ferry.server.errors import status_of
from ferry.server.routes import Protocol
from ferry.server.serving.context import ServingContext
from ferry.server.serving.jsonbody import loads

log = logging.getLogger(__name__)

_NUMPY_JSON_KINDS = frozenset("biuf")


def new_request_id(request: Request) -> str:
    """The server's own id for this request (a UUIDv7, whatever the client sent): the
    prediction log's key and the ``request_id`` answered. The client's ``X-Request-ID`` is
    kept beside it by the Timer."""
    request_id = time_ordered_id()
    request_id_var.set(request_id)
    return request_id


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {declared} bytes exceeds the limit of {limit} bytes", limit=limit
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        body = _decompress(body, encoding, limit)
    return body


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedBody(f"request body is not valid {encoding}: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes", limit=limit)
    return out


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedBody("the request body is empty; send a JSON object")
    return loads(body, "request body")


def batch_from_csv(body: bytes, signature: Signature) -> Batch:
    """A CSV with a header row -> a batch; cells are parsed by each column's dtype.

    Lines may end in ``\n``, ``\r\n`` or a lone ``\r`` (``newline=""`` hands the reader
    every style; the default split only on ``\n`` and a CR-only body was a 500). A cell
    longer than the csv module's field limit is a 413 naming it."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"CSV body is not UTF-8: {exc}") from exc
    rows = [row for row in _csv_rows(text) if row]
    if not rows:
        raise MalformedBody("the CSV body is empty; send a header row and data rows")
    header, data = rows[0], rows[1:]
    if not data:
        raise EmptyBatch("the CSV has a header but no rows")
    for number, row in enumerate(data):
        if len(row) != len(header):
            raise MalformedBody(
                f"CSV row {number} has {len(row)} cells; the header has {len(header)}",
                row=number,
            )
    columns = {name: [row[i] for row in data] for i, name in enumerate(header)}
    return batch_from_columns(columns, signature, source="text")


def _csv_rows(text: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return list(reader)
    except csv.Error as exc:
        limit = csv.field_size_limit()
        line = reader.line_num
        if "field limit" in str(exc):
            raise PayloadTooLarge(
                f"CSV line {line} has a cell over the limit of {limit} characters",
                line=line,
                limit=limit,
            ) from None
        raise MalformedBody(f"CSV line {line} is not valid CSV: {exc}", line=line) from None


async def predict(
    context: ServingContext, model: LoadedModel, batch: Batch, outputs: Sequence[str]
) -> dict[str, np.ndarray]:
    """Run the model (batched, off the event loop); a model that raises is a 500."""
    bind_model(model.name, model.version)
    try:
        return await context.batcher(model).predict(batch, outputs)
    except FerryError:
        raise
    except Exception as exc:
        request_id = request_id_var.get()
        log.exception("model %s:%s raised while predicting", model.name, model.version)
        raise PredictionFailed(
            f"model {model.name!r} failed to predict: {type(exc).__name__}: {exc} "
            f"(request id {request_id})",
            model=model.name,
            version=model.version,
        ) from exc


def jsonable(array: np.ndarray) -> Any:
    """An array orjson can write directly, or plain lists (NaN -> null) for other dtypes."""
    if array.dtype.kind in _NUMPY_JSON_KINDS and array.flags.c_contiguous:
        return array
    values = array.tolist()
    return _nan_to_none(values) if array.dtype.kind == "O" else values


def _nan_to_none(values: Any) -> Any:
    if isinstance(values, list):
        return [_nan_to_none(v) for v in values]
    if isinstance(values, float) and values != values:
        return None
    return values


def json_response(
    content: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class Timer:
    """Times one request and records it in the metrics, whatever its outcome, and tells the
    context's observers (prediction log, metering) about it when there are any."""

    __slots__ = ("client_id", "context", "protocol", "request", "request_id", "start")

    def __init__(
        self, context: ServingContext, request: Request, protocol: Protocol, request_id: str
    ) -> None:
        self.context = context
        self.request = request
        self.protocol = protocol
        self.request_id = request_id
        # the caller's own id, if it sent a well-formed one: logged beside ours, echoed back
        self.client_id = client_request_id(request.headers.get("x-request-id"))
        self.start = time.perf_counter()

    def headers(self) -> dict[str, str]:
        """The response's id headers: ours, and the caller's echoed back when it sent one."""
        if self.client_id is None:
            return {"x-request-id": self.request_id}
        return {"x-request-id": self.request_id, "x-client-request-id": self.client_id}

    def done(
        self,
        model: LoadedModel | None,
        status: int,
        batch: Batch | None = None,
        outputs: Mapping[str, np.ndarray] | None = None,
        error: FerryError | None = None,
    ) -> None:
        seconds = time.perf_counter() - self.start
        name, version = (model.name, model.version) if model is not None else ("-", "-")
        if model is not None:  # else keep what resolving bound (a version that failed to load)
            bind_model(name, version)
        rows = batch.n_rows if batch is not None and error is None else 0
        self.context.metrics.observe(name, version, self.protocol, status, seconds, rows)
        observers = self.context.observers
        if not observers:
            return
        event = PredictionEvent(
            request_id=self.request_id,
            client_request_id=self.client_id,
            model=name,
            version=version,
            protocol=self.protocol,
            status=status,
            rows=rows,
            seconds=seconds,
            timestamp=time.time() - seconds,
            principal=principal_id(self.request.scope),
            error_code=error.code if error is not None else None,
            inputs=batch,
            outputs=outputs,
        )
        for observer in observers:
            observer.observe(event)

    def failed(
        self, model: LoadedModel | None, exc: FerryError, batch: Batch | None = None
    ) -> None:
        self.context.metrics.errors.labels(exc.code).inc()
        self.done(model, status_of(exc, self.protocol), batch, error=exc)
