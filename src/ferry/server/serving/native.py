"""Ferry's own JSON protocol: /v1/models/{name}[/versions/{v}]/predict, POST and GET."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

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
from ferry.server.serving.schemas import (
    column_schema,
    native_request_schema,
    native_response_schema,
)

_BODY_KEYS = frozenset({"instances", "inputs", "outputs", "parameters"})
_JSON_TYPES = frozenset({"", "application/json", "text/json"})

Endpoint = Callable[..., Awaitable[Response]]


def parse_native(payload: Any, model: LoadedModel) -> tuple[Batch, list[str] | None]:
    """``{"instances": [...]}`` or ``{"inputs": {...}}`` (+ optional ``outputs``) -> batch."""
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "the body must be a JSON object with 'instances' (rows) or 'inputs' (columns)",
            got=type(payload).__name__,
        )
    unknown = sorted(payload.keys() - _BODY_KEYS)
    if unknown:
        raise InvalidRequest(
            f"unknown field {unknown[0]!r}; expected 'instances' or 'inputs', and 'outputs'",
            field=unknown[0],
        )
    requested = payload.get("outputs")
    if requested is not None and (
        not isinstance(requested, list) or not all(isinstance(o, str) for o in requested)
    ):
        raise InvalidRequest("'outputs' must be a list of output names", field="outputs")
    if ("instances" in payload) == ("inputs" in payload):
        raise InvalidRequest(
            "send exactly one of 'instances' (a list of rows) or 'inputs' (an object of columns)",
            field="instances",
        )
    signature = model.signature
    if "instances" in payload:
        return batch_from_records(payload["instances"], signature), requested
    inputs = payload["inputs"]
    if isinstance(inputs, list):
        return batch_from_records(inputs, signature), requested
    return batch_from_columns(inputs, signature), requested


async def answer(
    request: Request,
    context: ServingContext,
    name: str,
    version: str | None,
    decode: Callable[[LoadedModel], Awaitable[tuple[Batch, list[str] | None]]],
) -> Response:
    request_id = new_request_id(request)
    timer = Timer(context, request, "native", request_id)
    model: LoadedModel | None = None
    batch: Batch | None = None
    try:
        model = await context.models.resolve(name, version)
        batch, requested = await decode(model)
        if batch.n_rows > context.settings.max_request_rows:
            raise PayloadTooLarge(
                f"{batch.n_rows} rows exceed the limit of {context.settings.max_request_rows}",
                limit=context.settings.max_request_rows,
            )
        outputs = model.resolve_outputs(requested)
        result = await predict(context, model, batch, outputs)
    except FerryError as exc:
        timer.failed(model, exc, batch)
        raise
    content: dict[str, Any] = {key: jsonable(value) for key, value in result.items()}
    content.update(model=model.name, version=model.version, request_id=request_id)
    timer.done(model, 200, batch, result)
    return json_response(content, headers=timer.headers())


def _post_endpoint(fixed_name: str | None = None) -> Endpoint:
    async def post_predict(request: Request) -> Response:
        context = serving_context(request)
        name = fixed_name or request.path_params["name"]
        version = request.path_params.get("version")

        async def decode(model: LoadedModel) -> tuple[Batch, list[str] | None]:
            body = await read_body(request, context.max_body_bytes)
            kind = media_type(request)
            if kind == "text/csv":
                return batch_from_csv(body, model.signature), None
            if kind in _JSON_TYPES or kind.endswith("+json"):
                return parse_native(parse_json(body), model)
            raise UnsupportedMediaType(
                f"content type {kind!r} is not supported; send application/json or text/csv",
                content_type=kind,
            )

        return await answer(request, context, name, version, decode)

    return post_predict


def _get_endpoint(fixed_name: str | None = None) -> Endpoint:
    async def get_predict(request: Request) -> Response:
        """One row from the query string, typed by the signature: ?col=value&..."""
        context = serving_context(request)
        name = fixed_name or request.path_params["name"]
        version = request.path_params.get("version")

        async def decode(model: LoadedModel) -> tuple[Batch, list[str] | None]:
            params = request.query_params
            outputs = params.getlist("outputs") or None
            row = {key: value for key, value in params.items() if key != "outputs"}
            if not row:
                raise InvalidRequest(
                    "give the row's columns in the query string: ?"
                    + "&".join(f"{c}=..." for c in model.signature.names[:3]),
                    expected=model.signature.names,
                )
            return batch_from_records([row], model.signature, source="text"), outputs

        return await answer(request, context, name, version, decode)

    return get_predict


post_predict = _post_endpoint()


def _metadata(model: LoadedModel, context: ServingContext) -> dict[str, Any]:
    check = context.models.checks.get((model.name, model.version))
    return {
        "name": model.name,
        "version": model.version,
        "flavor": model.manifest.flavor,
        "signature": model.signature.model_dump(mode="json"),
        "created_at": model.manifest.created_at.isoformat(),
        "libraries": model.manifest.libraries,
        "example_check": check.status if check else "pending",
    }


async def list_models(request: Request) -> Response:
    context = serving_context(request)
    return json_response({"models": [_metadata(m, context) for m in context.models.loaded()]})


async def model_metadata(request: Request) -> Response:
    context = serving_context(request)
    params = request.path_params
    model = await context.models.resolve(params["name"], params.get("version"))
    return json_response(_metadata(model, context))


def native_router(models: list[LoadedModel]) -> APIRouter:
    """Routes for every model; each known model also gets its own typed, documented paths."""
    router = APIRouter(tags=["predict"])
    for model in {m.name: m for m in models}.values():
        path = f"/v1/models/{model.name}/predict"
        router.add_api_route(
            path,
            _post_endpoint(model.name),
            methods=["POST"],
            summary=f"Predict with {model.name}",
            tags=[model.name],
            openapi_extra=_post_openapi(model),
        )
        router.add_api_route(
            path,
            _get_endpoint(model.name),
            methods=["GET"],
            summary=f"Predict one row of {model.name} from the query string",
            tags=[model.name],
            openapi_extra={
                "parameters": [
                    {
                        "name": c.name,
                        "in": "query",
                        "required": c.required,
                        "schema": column_schema(c),
                    }
                    for c in model.signature.inputs
                    if c.is_scalar
                ],
                "responses": _responses(model),
            },
        )
    for path in ("/v1/models/{name}/predict", "/v1/models/{name}/versions/{version}/predict"):
        router.add_api_route(path, post_predict, methods=["POST"], summary="Predict")
        router.add_api_route(path, _get_endpoint(), methods=["GET"], summary="Predict one row")
    router.add_api_route("/v1/models", list_models, methods=["GET"], summary="List models")
    for path in ("/v1/models/{name}", "/v1/models/{name}/versions/{version}"):
        router.add_api_route(path, model_metadata, methods=["GET"], summary="Model metadata")
    return router


def _post_openapi(model: LoadedModel) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": native_request_schema(model)},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        "responses": _responses(model),
    }


def _responses(model: LoadedModel) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/FerryError"}
    return {
        "200": {
            "description": "Predictions",
            "content": {"application/json": {"schema": native_response_schema(model)}},
        },
        "422": {
            "description": "Input does not match the signature",
            "content": {"application/json": {"schema": error}},
        },
    }
