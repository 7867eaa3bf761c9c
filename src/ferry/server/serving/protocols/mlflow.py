"""MLflow's scoring protocol, wire-compatible with ``mlflow models serve``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ferry import __version__
from ferry.errors import InvalidRequest, UnsupportedMediaType
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch
from ferry.model.validation import batch_from_columns, batch_from_records
from ferry.security.scopes import Action
from ferry.server.openapi_bodies import mlflow_operation, ref
from ferry.server.routes import PUBLIC, Access, Protocol, RouteTable, need
from ferry.server.serving.context import ModelRef, serving_context
from ferry.server.serving.inference import (
    batch_from_csv,
    json_response,
    jsonable,
    media_type,
    parse_json,
)
from ferry.server.serving.pipeline import Answer, Decoded, run

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_mlflow(payload: Any, model: LoadedModel) -> Batch:
    """Exactly one of MLflow's four JSON layouts (plus optional ``params``) -> a batch."""
    if not isinstance(payload, dict):
        raise InvalidRequest(f"the body must be a JSON object with one of {list(FORMATS)}")
    present = [key for key in FORMATS if key in payload]
    unknown = sorted(payload.keys() - {*FORMATS, "params"})
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}; expected one of {list(FORMATS)}")
    if len(present) != 1:
        raise InvalidRequest(
            f"send exactly one of {list(FORMATS)}; got {present or 'none'}", formats=present
        )
    key = present[0]
    data = payload[key]
    signature = model.signature
    if key == "dataframe_split":
        return _from_split(data, model)
    if key == "dataframe_records":
        return batch_from_records(data, signature)
    if isinstance(data, dict):
        return batch_from_columns(data, signature)
    return batch_from_records(data, signature)


def _from_split(data: Any, model: LoadedModel) -> Batch:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InvalidRequest("dataframe_split must be an object with 'columns' and 'data'")
    rows = data["data"]
    columns = data.get("columns")
    if columns is None:
        return batch_from_records(rows, model.signature)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidRequest("dataframe_split.columns must be a list of column names")
    if columns == model.signature.names:
        return batch_from_records(rows, model.signature)
    width = len(columns)
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidRequest(
                f"dataframe_split.data row {number} must be a list of {width} values", row=number
            )
    return batch_from_columns(
        {name: [row[i] for row in rows] for i, name in enumerate(columns)}, model.signature
    )


class _MlflowCodec:
    """``mlflow models serve``'s four JSON layouts or a CSV in, ``{"predictions"}`` out."""

    protocol = Protocol.MLFLOW
    reads_body = True

    def decode(self, request: Request, body: bytes, model: LoadedModel) -> Decoded:
        kind = media_type(request)
        if kind == "text/csv":
            return Decoded(batch_from_csv(body, model.signature))
        if kind == "application/json":
            return Decoded(parse_mlflow(parse_json(body), model))
        raise UnsupportedMediaType(
            f"content type {kind or 'none'!r} is not supported; MLflow's protocol takes "
            "application/json or text/csv",
            content_type=kind,
        )

    def default_outputs(self, model: LoadedModel) -> list[str]:
        return ["predictions"]

    def encode(self, answer: Answer) -> Response:
        predictions = jsonable(answer.result["predictions"])
        return json_response({"predictions": predictions}, headers=answer.headers)


CODEC = _MlflowCodec()


async def invocations(request: Request) -> Response:
    return await run(request, CODEC, ModelRef(None))


async def model_invocations(request: Request) -> Response:
    return await run(request, CODEC, ModelRef(request.path_params["name"]))


async def ping(request: Request) -> Response:
    context = serving_context(request)
    if not context.models.ready:
        return PlainTextResponse("loading\n", status_code=503)
    return PlainTextResponse("\n")


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


MLFLOW_OPERATION = mlflow_operation(ref("MLflowInvocationRequest"))


def mlflow_routes() -> RouteTable:
    routes = RouteTable(Protocol.MLFLOW, tags=["mlflow"])
    routes.add(
        "/invocations",
        invocations,
        "POST",
        Access((Action.PREDICT,), single=True),
        fast=True,
        summary="MLflow scoring",
        openapi_extra=MLFLOW_OPERATION,
    )
    routes.add(
        "/mlflow/{name}/invocations",
        model_invocations,
        "POST",
        need(Action.PREDICT, on="name"),
        fast=True,
        summary="MLflow scoring",
        openapi_extra=MLFLOW_OPERATION,
    )
    loading: dict[int | str, dict[str, Any]] = {
        503: {"description": "Models still loading", "content": {"text/plain": {}}}
    }
    for path in ("/ping", "/health"):
        routes.add(
            path,
            ping,
            "GET",
            PUBLIC,
            summary="MLflow liveness",
            response_class=PlainTextResponse,
            responses=loading,
        )
    routes.add(
        "/version",
        version,
        "GET",
        PUBLIC,
        summary="Server version",
        response_class=PlainTextResponse,
    )
    return routes
