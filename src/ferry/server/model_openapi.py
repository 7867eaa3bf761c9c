"""One model's own OpenAPI document, ``GET /v1/models/{name}/openapi.json``: its predict,
MLflow and V2 routes typed by its signature. ``ferry server`` loads models on demand, so its
main document cannot type them; this one can, and ``/docs?model=NAME`` shows it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ferry import __version__
from ferry.model.loaded import LoadedModel
from ferry.server.openapi_bodies import (
    MLFLOW_SCHEMAS,
    V2_SCHEMAS,
    answer,
    declare_errors,
    json_body,
    mlflow_operation,
    mlflow_request_schema,
    ref,
    v2_infer_operation,
)
from ferry.server.routes import RouteTable
from ferry.server.serving.context import serving_context
from ferry.server.serving.inference import json_response
from ferry.server.serving.schemas import (
    column_schema,
    native_request_schema,
    native_response_schema,
    row_object_schema,
)
from ferry.server.state import ferry_state

JsonSchema = dict[str, Any]
DOCUMENT_PATH = "/v1/models/{name}/openapi.json"


async def model_document(request: Request) -> Response:
    name = request.path_params["name"]
    model = await serving_context(request).models.resolve(name)
    routes = ferry_state(request).routes
    return json_response(build_model_document(model, request.app.openapi(), routes))


def build_model_document(model: LoadedModel, main: JsonSchema, routes: RouteTable) -> JsonSchema:
    """The document; components (error bodies, security schemes, security) from ``main``."""
    name = model.name
    components = main.get("components", {})
    native = {
        "post": {
            "tags": [name],
            "summary": f"Predict with {name}",
            "operationId": "predict",
            "requestBody": json_body(native_request_schema(model), csv=True),
            "responses": _native_responses(model),
        },
        "get": {
            "tags": [name],
            "summary": f"Predict one row of {name} from the query string",
            "operationId": "predict_one_row",
            "parameters": [
                {"name": c.name, "in": "query", "required": c.required, "schema": column_schema(c)}
                for c in model.signature.inputs
                if c.is_scalar
            ],
            "responses": _native_responses(model),
        },
    }
    paths: JsonSchema = {
        f"/v1/models/{name}/predict": native,
        f"/mlflow/{name}/invocations": {
            "post": {
                "tags": [name],
                "summary": f"MLflow scoring with {name}",
                "operationId": "mlflow_invocations",
                **mlflow_operation(mlflow_request_schema(row_object_schema(model))),
            }
        },
        f"/v2/models/{name}/infer": {
            "post": {
                "tags": [name],
                "summary": f"V2 inference with {name}",
                "operationId": "v2_infer",
                "description": "Inputs as `GET /v2/models/" + name + "` describes them.",
                **v2_infer_operation(ref("V2InferenceRequest")),
            }
        },
        f"/v2/models/{name}": {
            "get": {
                "tags": [name],
                "summary": f"V2 metadata of {name}",
                "operationId": "v2_metadata",
                "responses": {"200": answer("Model metadata", ref("V2ModelMetadata"))},
            }
        },
    }
    for path, operations in paths.items():
        for operation in operations.values():
            declare_errors(routes.protocol_of(path), operation)
    security = _security_of(main)
    if security is not None:
        for operations in paths.values():
            for operation in operations.values():
                operation["security"] = security
    schemas = {**V2_SCHEMAS, **MLFLOW_SCHEMAS, **components.get("schemas", {})}
    document: JsonSchema = {
        "openapi": main.get("openapi", "3.1.0"),
        "info": {
            "title": f"Ferry model {name} (version {model.version})",
            "version": __version__,
            "description": f"Routes of `{name}`, typed by its signature. All routes: "
            "`/openapi.json`.",
        },
        "paths": paths,
        "components": {
            "schemas": {k: v for k, v in schemas.items() if k in _NEEDED},
            "securitySchemes": components.get("securitySchemes", {}),
        },
    }
    return document


_NEEDED = frozenset({"FerryError", *V2_SCHEMAS, *MLFLOW_SCHEMAS})


def _native_responses(model: LoadedModel) -> JsonSchema:
    return {
        "200": answer("Predictions", native_response_schema(model)),
        "422": answer("Input does not match the signature", ref("FerryError")),
    }


def _security_of(main: JsonSchema) -> list[JsonSchema] | None:
    for operations in main.get("paths", {}).values():
        for operation in operations.values():
            if "security" in operation:
                return list(operation["security"])
    return None
