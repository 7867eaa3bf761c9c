"""Ferry's own JSON protocol: /v1/models/{name}[/versions/{v}]/predict, POST and GET."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ferry.errors import InvalidRequest, UnsupportedMediaType
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch
from ferry.model.validation import batch_from_columns, batch_from_records
from ferry.security.scopes import Action
from ferry.server.routes import Protocol, RouteTable, need
from ferry.server.serving.context import ModelRef, ServingContext, serving_context
from ferry.server.serving.inference import (
    batch_from_csv,
    json_response,
    jsonable,
    media_type,
    parse_json,
)
from ferry.server.serving.pipeline import Answer, Decoded, run
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


class _NativeCodec:
    """Ferry's JSON (or CSV) body, or one row from the query string (``reads_body`` False)."""

    protocol = Protocol.NATIVE

    def __init__(self, reads_body: bool) -> None:
        self.reads_body = reads_body

    def decode(self, request: Request, body: bytes, model: LoadedModel) -> Decoded:
        if not self.reads_body:
            return _decode_query(request, model)
        kind = media_type(request)
        if kind == "text/csv":
            return Decoded(batch_from_csv(body, model.signature))
        if kind in _JSON_TYPES or kind.endswith("+json"):
            batch, requested = parse_native(parse_json(body), model)
            return Decoded(batch, requested)
        raise UnsupportedMediaType(
            f"content type {kind!r} is not supported; send application/json or text/csv",
            content_type=kind,
        )

    def default_outputs(self, model: LoadedModel) -> list[str]:
        return model.resolve_outputs(None)

    def encode(self, answer: Answer) -> Response:
        content: dict[str, Any] = {key: jsonable(value) for key, value in answer.result.items()}
        content.update(
            model=answer.model.name, version=answer.model.version, request_id=answer.request_id
        )
        return json_response(content, headers=answer.headers)


def _decode_query(request: Request, model: LoadedModel) -> Decoded:
    """One row from the query string, typed by the signature: ?col=value&..."""
    params = request.query_params
    outputs = params.getlist("outputs") or None
    row = {key: value for key, value in params.items() if key != "outputs"}
    if not row:
        raise InvalidRequest(
            "give the row's columns in the query string: ?"
            + "&".join(f"{c}=..." for c in model.signature.names[:3]),
            expected=model.signature.names,
        )
    return Decoded(batch_from_records([row], model.signature, source="text"), outputs)


BODY = _NativeCodec(reads_body=True)
QUERY = _NativeCodec(reads_body=False)


def _post_endpoint(fixed_name: str | None = None) -> Endpoint:
    async def post_predict(request: Request) -> Response:
        params = request.path_params
        name = fixed_name or params["name"]
        return await run(request, BODY, ModelRef(name, params.get("version")))

    return post_predict


def _get_endpoint(fixed_name: str | None = None) -> Endpoint:
    async def get_predict(request: Request) -> Response:
        """One row from the query string, typed by the signature: ?col=value&..."""
        params = request.path_params
        name = fixed_name or params["name"]
        return await run(request, QUERY, ModelRef(name, params.get("version")))

    return get_predict


async def kserve_predict(request: Request) -> Response:
    """KServe V1: ``POST /v1/models/{name}:predict`` with ``{"instances": [...]}``."""
    return await run(request, BODY, ModelRef(request.path_params["name"]))


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
        "loaded": True,
        "ready": True,  # resolved, so loaded and answering in this worker
    }


async def list_models(request: Request) -> Response:
    """Every model the server can serve (the source's names: the registry's, on ``ferry
    server``, the same from every worker), with its metadata where this worker has it loaded."""
    context = serving_context(request)
    loaded: dict[str, LoadedModel] = {}
    for model in context.models.loaded():
        kept = loaded.get(model.name)
        if kept is None or _newer(model.version, kept.version):
            loaded[model.name] = model
    listed = []
    for name in sorted({*context.models.names(), *loaded}):
        found = loaded.get(name)
        if found is None:
            listed.append({"name": name, "loaded": False, "ready": False})
        else:
            listed.append(_metadata(found, context))
    return json_response({"models": listed})


def _newer(a: str, b: str) -> bool:
    return (int(a), a) > (int(b), b) if a.isdigit() and b.isdigit() else a > b


async def model_metadata(request: Request) -> Response:
    context = serving_context(request)
    params = request.path_params
    model = await context.models.resolve(params["name"], params.get("version"))
    return json_response(_metadata(model, context))


def native_routes(models: list[LoadedModel]) -> RouteTable:
    """Routes for every model; each known model also gets its own typed, documented paths."""
    routes = RouteTable(Protocol.NATIVE, tags=["predict"])
    for model in {m.name: m for m in models}.values():
        path = f"/v1/models/{model.name}/predict"
        predict = need(Action.PREDICT, model=model.name)
        routes.add(
            path,
            _post_endpoint(model.name),
            "POST",
            predict,
            summary=f"Predict with {model.name}",
            tags=[model.name],
            openapi_extra=_post_openapi(model),
        )
        routes.add(
            path,
            _get_endpoint(model.name),
            "GET",
            predict,
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
    predict = need(Action.PREDICT, on="name")
    for path in ("/v1/models/{name}/predict", "/v1/models/{name}/versions/{version}/predict"):
        routes.add(path, post_predict, "POST", predict, fast=True, summary="Predict")
        routes.add(path, _get_endpoint(), "GET", predict, summary="Predict one row")
    routes.add(
        "/v1/models/{name}:predict", kserve_predict, "POST", predict, summary="KServe V1 predict"
    )
    listing = need(Action.READ, Action.PREDICT)
    routes.add("/v1/models", list_models, "GET", listing, summary="List models")
    metadata = need(Action.READ, Action.PREDICT, on="name")
    for path in ("/v1/models/{name}", "/v1/models/{name}/versions/{version}"):
        routes.add(path, model_metadata, "GET", metadata, summary="Model metadata")
    return routes


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
