"""create_app(): the one assembly of Ferry's app, for ``ferry serve``, ``ferry server`` and
embedding (mount it: ``host.mount("/ml", create_app(settings, models))``, README)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from ferry import __version__
from ferry.config.settings import Settings, get_settings
from ferry.db.events import PredictionObserver
from ferry.errors import FerryError
from ferry.model.loaded import LoadedModel
from ferry.monitoring.metrics import ServingMetrics
from ferry.security.identity import PRINCIPAL_SCOPE_KEY
from ferry.security.scopes import Action
from ferry.server.docs import docs_routes
from ferry.server.errors import (
    client_gone_handler,
    ferry_error_handler,
    http_error_handler,
    unexpected_error_handler,
)
from ferry.server.headers import install_header_limit
from ferry.server.openapi import install_openapi, openapi_routes
from ferry.server.platform import registry_gauges
from ferry.server.routes import PUBLIC, Access, Protocol, RouteTable
from ferry.server.serving.catalog import RegistryModels
from ferry.server.serving.context import ServingContext, serving_context
from ferry.server.serving.fastpath import FastPathMiddleware
from ferry.server.serving.inference import json_response
from ferry.server.serving.protocols.mlflow import mlflow_routes
from ferry.server.serving.protocols.native import native_routes
from ferry.server.serving.protocols.v2 import v2_routes
from ferry.server.serving.repository import ModelSource, StaticModels
from ferry.server.state import FerryState, LazyStart, ferry_state

if TYPE_CHECKING:
    from ferry.monitoring.performance import AlertHook
    from ferry.monitoring.storage import MonitoringStore
    from ferry.server.auth import Security
    from ferry.server.monitoring import Monitoring

MEMORY_REPORT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Features:
    """What an app serves besides predictions. ``ferry serve``: monitoring, security when
    auth is on; ``ferry server``: all of them."""

    control: bool = False  # the registry's REST API under /api/v1 (a RegistryModels source)
    security: bool = False  # API keys and JWTs, quotas, metering, audit (server/auth.py)
    monitoring: bool = False  # output metrics, feedback, performance; the prediction log:
    prediction_log: str = "off"  # off, all or a sample fraction
    drift_jobs: bool = False  # the drift checks every FERRY_DRIFT_INTERVAL_SECONDS
    alerting: bool = False  # performance alerts posted to FERRY_ALERT_WEBHOOK_URL


def create_app(
    settings: Settings | None,
    source: ModelSource | Iterable[LoadedModel],
    features: Features = Features(),  # noqa: B008 (frozen)
    *,
    observers: Sequence[PredictionObserver] = (),
    alert_hooks: Sequence[AlertHook] = (),
) -> FastAPI:
    """The complete app for ``source`` (loaded models, or a source that loads on demand) with
    ``features`` on, assembled in one fixed order: state, security, monitoring, the app and
    its parts, middleware, routes. ``observers`` are told about every answered prediction
    request, ``alert_hooks`` about every performance alert (both for embedding and tests)."""
    settings = settings or get_settings()
    source = source if isinstance(source, ModelSource) else StaticModels.of(source)
    metrics = ServingMetrics()
    context = ServingContext(source, metrics, settings)
    state = FerryState(settings, context)
    extra: list[PredictionObserver] = []
    store: MonitoringStore | None = None
    if isinstance(source, RegistryModels):
        from ferry.monitoring.storage import MonitoringStore

        registry = source  # bound now: the lambda reads the worker's registry, after the fork
        state.registry = lambda: registry.registry
        store = MonitoringStore.from_settings(settings)  # its own database (lazy, fork-safe)
        state.metric_sources.extend(registry_gauges(store))
    state.routes = _routes(settings, state, source, features)
    if features.security:
        state.security = _security(settings, source, features, state.routes)
        extra.append(state.security)
    if features.monitoring:
        hooks = [*alert_hooks, *_webhook_hooks(settings, store, features)]
        state.monitoring, added = _monitoring(settings, context, features, hooks)
        extra.extend(added)
    context.observers = (*observers, *extra)
    state.parts.append(lambda: _serving(context))
    if features.drift_jobs and state.registry is not None:
        from ferry.server.alerting import drift_job

        job = drift_job(settings, state.registry, store)
        if job is not None:
            state.parts.append(job)

    app = FastAPI(
        title="Ferry server" if features.control else f"Ferry: {', '.join(source.names())}",
        version=__version__,
        description="Predictions over Ferry's JSON protocol, MLflow's `/invocations` and the "
        "Open Inference Protocol V2.",
        lifespan=state.lifespan,
        openapi_url=None,  # the route table's /openapi.json, /docs and /redoc (offline)
        docs_url=None,
        redoc_url=None,
    )
    app.state.ferry = state
    app.add_middleware(FastPathMiddleware, routes=state.routes)
    app.add_middleware(LazyStart, state=state)  # a mounted app: no lifespan runs
    app.add_exception_handler(FerryError, ferry_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(ClientDisconnect, client_gone_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    state.routes.install(app)
    install_openapi(app, state.routes)
    install_header_limit(app, settings.max_header_bytes, metrics)
    if state.security is not None:
        state.security.install(app, metrics)  # last: outermost but the header limit
    if isinstance(source, RegistryModels):
        source.on_evict = context.forget
    return app


def _routes(
    settings: Settings, state: FerryState, source: ModelSource, features: Features
) -> RouteTable:
    """The app's one route table (server/routes.py), in FastAPI's matching order."""
    routes = RouteTable()
    if features.control and state.registry is not None:
        from ferry.server.control import control_routes

        routes.include(control_routes(state.registry, settings=settings))
    routes.include(native_routes(source.loaded()))
    routes.include(mlflow_routes())
    routes.include(v2_routes())
    if features.monitoring:
        from ferry.server.serving.feedback import feedback_routes

        routes.include(feedback_routes())
    health = RouteTable(Protocol.OPS, tags=["health"])
    health.add("/healthz", healthz, "GET", PUBLIC)
    health.add("/readyz", readyz, "GET", PUBLIC)
    metrics = Access((Action.READ,), public_if_metrics_public=True)
    # Prometheus text: documented as text/plain
    health.add("/metrics", metrics_endpoint, "GET", metrics, response_class=PlainTextResponse)
    routes.include(health)
    routes.include(openapi_routes())
    routes.include(docs_routes())
    return routes


def _security(
    settings: Settings, source: ModelSource, features: Features, routes: RouteTable
) -> Security:
    from ferry.server.auth import Security

    names = source.names()
    single = names[0] if not features.control and len(names) == 1 else None
    security = Security.from_settings(settings, routes, single_model=single)
    security.database.migrate()  # once, before any worker forks
    return security


def _monitoring(
    settings: Settings, context: ServingContext, features: Features, hooks: list[AlertHook]
) -> tuple[Monitoring, list[PredictionObserver]]:
    from ferry.monitoring.predlog import LogPolicy
    from ferry.server.monitoring import build_monitoring

    if LogPolicy.parse(features.prediction_log).enabled:  # SQLAlchemy, Alembic: only here
        from ferry.config.paths import database_url
        from ferry.db.migrations import upgrade

        upgrade(database_url(settings))  # its table, once, before any worker forks
    return build_monitoring(
        settings, context, prediction_log=features.prediction_log, alert_hooks=hooks
    )


def _webhook_hooks(
    settings: Settings, store: MonitoringStore | None, features: Features
) -> list[AlertHook]:
    """Performance alerts posted to the webhook, once per cooldown among the processes on
    monitoring's database."""
    if not features.alerting or store is None:
        return []
    from ferry.server.alerting import performance_webhook, webhook_config

    webhook = webhook_config(settings)
    if webhook is None:
        return []
    return [performance_webhook(webhook, lambda: store.engine, settings.alert_cooldown_seconds)]


@asynccontextmanager
async def _serving(context: ServingContext) -> AsyncIterator[None]:
    """The model source and the memory gauges, for as long as the app runs."""
    await context.models.start()
    reporter = asyncio.create_task(_report_memory(context))
    try:
        yield
    finally:
        reporter.cancel()
        context.close()
        await context.models.stop()


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
    if ferry_state(request).security is not None and PRINCIPAL_SCOPE_KEY not in request.scope:
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
    for source in ferry_state(request).metric_sources:
        body += await source()
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
