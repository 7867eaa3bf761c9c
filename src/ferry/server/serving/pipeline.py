"""The one predict pipeline, shared by every protocol.

resolve → read → decode (+ validate, into a Batch) → limit → batch → predict → encode →
observe. A protocol is a ``Codec``: it turns a request into a ``Decoded`` batch and a result
into an answer, and nothing else; which model a request names is the context's ``Resolver``
(``ferry server``'s aliases and traffic splits plug in there). Every step that is not the
codec's happens here once: the request id, the body limit, the row limit and its message, the
choice of outputs, running the model (batched), metrics and observers.

Cost, measured in-process (1-row iris, raw ASGI calls): no pydantic and no FastAPI on this
path; a quick model that finds its thread idle predicts inline (``batching.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from ferry.errors import FerryError, PayloadTooLarge
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch
from ferry.server.routes import Protocol as Wire
from ferry.server.serving.context import ModelRef, serving_context
from ferry.server.serving.inference import Timer, new_request_id, predict, read_body

__all__ = ["Answer", "Codec", "Decoded", "ModelRef", "run"]

Outputs = dict[str, np.ndarray]


@dataclass(slots=True)
class Decoded:
    """A request as the pipeline runs it: the validated batch, the outputs it asks for (None:
    the codec's default), and what the codec needs again to encode the answer."""

    batch: Batch
    outputs: list[str] | None = None
    state: object = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What a codec encodes: the request, its model, its decoded form and the result."""

    request: Request
    model: LoadedModel
    decoded: Decoded
    outputs: list[str]
    result: Outputs
    request_id: str
    headers: dict[str, str]


class Codec(Protocol):
    """A wire protocol: request → Decoded, Answer → Response. No resolve, no limits."""

    protocol: Wire  # its error shape; the metrics' and prediction log's label
    reads_body: bool  # False: the request is in the URL (GET predict)

    def decode(self, request: Request, body: bytes, model: LoadedModel) -> Decoded: ...

    def default_outputs(self, model: LoadedModel) -> list[str]: ...

    def encode(self, answer: Answer) -> Response: ...


async def run(request: Request, codec: Codec, ref: ModelRef) -> Response:
    """Answer one prediction request with ``codec``; FerryErrors propagate (the caller's error
    handler shapes them per protocol) after being counted and observed."""
    context = serving_context(request)
    request_id = new_request_id(request)
    timer = Timer(context, request, codec.protocol, request_id)
    model: LoadedModel | None = None
    batch: Batch | None = None
    try:
        model = await context.resolver(context, ref)
        body = await read_body(request, context.max_body_bytes) if codec.reads_body else b""
        decoded = codec.decode(request, body, model)
        batch = decoded.batch
        limit = context.settings.max_request_rows
        if batch.n_rows > limit:
            raise PayloadTooLarge(
                f"{batch.n_rows} rows exceed the limit of {limit} rows a request",
                limit=limit,
                rows=batch.n_rows,
            )
        requested = decoded.outputs
        outputs = model.resolve_outputs(requested) if requested else codec.default_outputs(model)
        result = await predict(context, model, batch, outputs)
        response = codec.encode(
            Answer(request, model, decoded, outputs, result, request_id, timer.headers())
        )
    except FerryError as exc:
        timer.failed(model, exc, batch)
        raise
    timer.done(model, 200, batch, result)
    return response
