"""The app's ``/openapi.json``, completed: what FastAPI cannot see in endpoints that read their
own request (path parameters, the V2 and MLflow bodies), the two ways to send a key, and which
operations need one when auth is on. Also mounts the per-model documents and offline docs."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from ferry.security.scopes import Action
from ferry.server.model_openapi import DOCUMENT_PATH, model_document
from ferry.server.openapi_bodies import (
    MLFLOW_SCHEMAS,
    V2_SCHEMAS,
    answer,
    declare_errors,
    ref,
)
from ferry.server.routes import PUBLIC, Protocol, RouteTable, need
from ferry.server.serving.inference import json_response
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


def openapi_routes() -> RouteTable:
    """``/openapi.json`` and each model's own document (``/docs`` lives in docs.py)."""
    routes = RouteTable(Protocol.OPS, tags=["docs"])
    routes.add("/openapi.json", main_document, "GET", PUBLIC, include_in_schema=False)
    routes.add(
        DOCUMENT_PATH,
        model_document,
        "GET",
        need(Action.READ, Action.PREDICT, on="name"),
        summary="One model's own OpenAPI document, typed by its signature",
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    return routes


async def main_document(request: Request) -> Response:
    """The app's document; mounted under a prefix, it names that prefix as its server."""
    document = request.app.openapi()
    root = str(request.scope.get("root_path", "")).rstrip("/")
    if root:
        document = {**document, "servers": [{"url": root}]}
    return json_response(document)


def install_openapi(app: FastAPI, routes: RouteTable) -> None:
    """Complete ``app``'s document, from its routes' declared access."""
    build = app.openapi

    def openapi() -> JsonSchema:
        if app.openapi_schema is None:
            auth = ferry_state(app).security is not None
            app.openapi_schema = complete(build(), routes, auth=auth)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: JsonSchema, routes: RouteTable, *, auth: bool) -> JsonSchema:
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    schemas["FerryError"] = ERROR_SCHEMA
    schemas.update(V2_SCHEMAS)
    schemas.update(MLFLOW_SCHEMAS)
    paths = document.get("paths", {})
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in _METHODS:
                _declare_path_parameters(path, operation)
    for route in routes:  # what the route table says of each operation
        operation = paths.get(compile_path(route.path)[1], {}).get(route.method.lower())
        if operation is None:
            continue  # not in the document (include_in_schema=False)
        declare_errors(route.protocol, operation)
        if auth and route.access.actions:
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
