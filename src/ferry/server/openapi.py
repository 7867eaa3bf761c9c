"""The app's ``/openapi.json``, completed: what FastAPI cannot see in endpoints that read their
own request (path parameters, the V2 and MLflow bodies), the two ways to send a key, and which
operations need one when auth is on. Also mounts the per-model documents and offline docs."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from ferry.config.settings import Settings
from ferry.server.access import AccessPolicy
from ferry.server.docs import install_docs
from ferry.server.model_openapi import DOCUMENT_PATH, model_document
from ferry.server.openapi_bodies import (
    MLFLOW_SCHEMAS,
    V2_SCHEMAS,
    answer,
    declare_errors,
    mlflow_operation,
    ref,
    v2_infer_operation,
)
from ferry.server.state import ferry_state

JsonSchema = dict[str, Any]
SECURITY_SCHEMES: JsonSchema = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <key>` (a `ferry keys create` key).",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
            "required": ["code", "message", "details"],
        }
    },
}
SECURITY: list[JsonSchema] = [{"bearer": []}, {"apiKey": []}]
PARAMETER_DOCS = {
    "name": "The model's name (or name@alias).",
    "version": "A version number of the model.",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_TEMPLATE = re.compile(r"{([^}/]+)}")


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Complete ``app``'s document; add ``/v1/models/{name}/openapi.json`` and offline docs."""
    app.add_api_route(
        DOCUMENT_PATH,
        model_document,
        methods=["GET"],
        tags=["docs"],
        summary="One model's own OpenAPI document, typed by its signature",
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    install_docs(app)
    build = app.openapi
    policy = AccessPolicy(settings.public_metrics)

    def openapi() -> JsonSchema:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                build(), policy, auth=ferry_state(app).security is not None
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: JsonSchema, policy: AccessPolicy, *, auth: bool) -> JsonSchema:
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    schemas["FerryError"] = ERROR_SCHEMA
    schemas.update(V2_SCHEMAS)
    schemas.update(MLFLOW_SCHEMAS)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            _declare_path_parameters(path, operation)
            _bodies(path, method, operation)
            declare_errors(path, operation)
            if auth and policy.requirement(method.upper(), path) is not None:
                operation["security"] = SECURITY
                operation.setdefault("responses", {}).setdefault(
                    "401", answer("No key, or an unknown one", ref("FerryError"))
                )
    return document


def _declare_path_parameters(path: str, operation: JsonSchema) -> None:
    parameters = operation.setdefault("parameters", [])
    declared = {p.get("name") for p in parameters if p.get("in") == "path"}
    for name in _TEMPLATE.findall(path):
        if name not in declared:
            parameters.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "description": PARAMETER_DOCS.get(name, name),
                    "schema": {"type": "string", "minLength": 1},
                }
            )
    if not parameters:
        del operation["parameters"]


def _bodies(path: str, method: str, operation: JsonSchema) -> None:
    """The foreign protocols' bodies, where FastAPI saw only a raw request."""
    if method == "post" and (path == "/invocations" or path == "/mlflow/{name}/invocations"):
        operation.update(mlflow_operation(ref("MLflowInvocationRequest")))
    elif method == "post" and path.startswith("/v2/models/") and path.endswith("/infer"):
        operation.update(v2_infer_operation(ref("V2InferenceRequest")))
    elif method == "get" and path in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        operation["responses"] = {"200": answer("Model metadata", ref("V2ModelMetadata"))}
    elif method == "get" and path == "/v2":
        operation["responses"] = {"200": answer("Server metadata", ref("V2ServerMetadata"))}
