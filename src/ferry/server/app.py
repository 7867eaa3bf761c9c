"""create_app(): the ASGI app serving a set of loaded models over three protocols."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from ferry import __version__
from ferry.config.settings import Settings, get_settings
from ferry.errors import FerryError
from ferry.model.loaded import LoadedModel
from ferry.monitoring.events import PredictionObserver
from ferry.monitoring.metrics import ServingMetrics
from ferry.security.identity import IDENTITY_SCOPE_KEY
from ferry.server.errors import (
    client_gone_handler,
    ferry_error_handler,
    http_error_handler,
    unexpected_error_handler,
)
from ferry.server.headers import install_header_limit
from ferry.server.serving.context import ServingContext, serving_context
from ferry.server.serving.fastpath import FastPathMiddleware, PredictionRoutes
from ferry.server.serving.inference import json_response
from ferry.server.serving.mlflow import invocations, mlflow_router, model_invocations
from ferry.server.serving.native import native_router, post_predict
from ferry.server.serving.repository import ModelSource, StaticModels
from ferry.server.serving.v2 import infer, v2_router

MEMORY_REPORT_SECONDS = 5.0
ERROR_SCHEMA: dict[str, Any] = {
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


def create_app(
    models: Iterable[LoadedModel] | ModelSource,
    settings: Settings | None = None,
    *,
    routers: Sequence[APIRouter] = (),
    title: str | None = None,
    observers: Sequence[PredictionObserver] = (),
) -> FastAPI:
    """An app answering for ``models`` (loaded models, or a source that loads on demand) over
    the three protocols, plus ``routers`` (the control plane, in ``ferry server``);
    ``observers`` are told about every answered prediction request."""
    settings = settings or get_settings()
    source = models if isinstance(models, ModelSource) else StaticModels.of(models)
    metrics = ServingMetrics()
    context = ServingContext(source, metrics, settings, observers=tuple(observers))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await source.start()
        reporter = asyncio.create_task(_report_memory(context))
        try:
            yield
        finally:
            reporter.cancel()
            context.close()
            await source.stop()

    app = FastAPI(
        title=title or f"Ferry: {', '.join(source.names())}",
        version=__version__,
        description="Predictions over Ferry's JSON protocol, MLflow's `/invocations` and the "
        "Open Inference Protocol V2.",
        lifespan=lifespan,
    )
    app.state.serving = context
    app.state.auth = False  # Security.install turns it on: /readyz then names models to keys only
    app.add_middleware(
        FastPathMiddleware,
        routes=PredictionRoutes(post_predict, invocations, model_invocations, infer),
    )
    app.add_exception_handler(FerryError, ferry_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(ClientDisconnect, client_gone_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    for router in routers:
        app.include_router(router)
    app.include_router(native_router(source.loaded()))
    app.include_router(mlflow_router())
    app.include_router(v2_router())
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["health"])
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], tags=["health"])
    _add_error_schema(app)
    install_header_limit(app, settings.max_header_bytes)
    return app


async def _report_memory(context: ServingContext) -> None:
    """Each worker refreshes its own gauges, whichever worker answers /metrics."""
    while True:
        context.metrics.update_memory()
        context.metrics.loaded.set(len(context.models.loaded()))
        await asyncio.sleep(MEMORY_REPORT_SECONDS)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready or not, for probes; which models and versions are loaded and whether the database
    answers only to a caller with a valid key when auth is on (the auth layer leaves its
    principal on public routes too)."""
    source = serving_context(request).models
    body: dict[str, object] = {"ready": source.ready}
    if request.app.state.auth and IDENTITY_SCOPE_KEY not in request.scope:
        return json_response(body, status=200 if source.ready else 503)
    body["models"] = {f"{n}:{v}": c.status for (n, v), c in source.checks.items()}
    if source.database is not None:
        # still ready while the database is down: loaded models keep answering, and a failed
        # probe would take every replica out of the Service at once (serving/catalog.py)
        body["database"] = source.database
    return json_response(body, status=200 if source.ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    body = serving_context(request).metrics.render()
    # more exposition text from outside serving (ferry server adds the drift gauges)
    for source in getattr(request.app.state, "metric_sources", ()):
        body += await source()
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


def _add_error_schema(app: FastAPI) -> None:
    """Register the error body once so per-model routes can reference it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {})["FerryError"] = (
                ERROR_SCHEMA
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
