"""MLflow's scoring protocol, wire-compatible with ``mlflow models serve``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ferry import __version__
from ferry.errors import FerryError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch
from ferry.model.validation import batch_from_columns, batch_from_records
from ferry.server.serving.context import ServingContext, serving_context
from ferry.server.serving.inference import (
    Timer,
    batch_from_csv,
    json_response,
    jsonable,
    media_type,
    new_request_id,
    parse_json,
    predict,
    read_body,
)

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


async def _invoke(request: Request, context: ServingContext, name: str | None) -> Response:
    request_id = new_request_id(request)
    timer = Timer(context, request, "mlflow", request_id)
    model: LoadedModel | None = None
    batch: Batch | None = None
    try:
        model = await _resolve(context, name)
        body = await read_body(request, context.max_body_bytes)
        kind = media_type(request)
        if kind == "text/csv":
            batch = batch_from_csv(body, model.signature)
        elif kind == "application/json":
            batch = parse_mlflow(parse_json(body), model)
        else:
            raise UnsupportedMediaType(
                f"content type {kind or 'none'!r} is not supported; MLflow's protocol takes "
                "application/json or text/csv",
                content_type=kind,
            )
        if batch.n_rows > context.settings.max_request_rows:
            raise PayloadTooLarge(f"{batch.n_rows} rows exceed the limit")
        result = await predict(context, model, batch, ["predictions"])
    except FerryError as exc:
        timer.failed(model, exc, batch)
        raise
    timer.done(model, 200, batch, result)
    return json_response({"predictions": jsonable(result["predictions"])}, headers=timer.headers())


async def _resolve(context: ServingContext, name: str | None) -> LoadedModel:
    if name is not None:
        return await context.models.resolve(name)
    names = context.models.names()
    if len(names) != 1:
        raise InvalidRequest(
            f"this server has {len(names)} models; post to /mlflow/<name>/invocations",
            models=names,
        )
    return await context.models.resolve(names[0])


async def invocations(request: Request) -> Response:
    return await _invoke(request, serving_context(request), None)


async def model_invocations(request: Request) -> Response:
    return await _invoke(request, serving_context(request), request.path_params["name"])


async def ping(request: Request) -> Response:
    context = serving_context(request)
    if not context.models.ready:
        return PlainTextResponse("loading\n", status_code=503)
    return PlainTextResponse("\n")


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


def mlflow_router() -> APIRouter:
    router = APIRouter(tags=["mlflow"])
    router.add_api_route("/invocations", invocations, methods=["POST"], summary="MLflow scoring")
    router.add_api_route(
        "/mlflow/{name}/invocations", model_invocations, methods=["POST"], summary="MLflow scoring"
    )
    for path in ("/ping", "/health"):
        router.add_api_route(path, ping, methods=["GET"], summary="MLflow liveness")
    router.add_api_route("/version", version, methods=["GET"], summary="Server version")
    return router
