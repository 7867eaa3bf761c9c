"""``ferry server``: the registry's control plane and every registered model's data plane."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from ferry.config.paths import cache_dir
from ferry.config.settings import Settings, get_settings
from ferry.monitoring.events import PredictionObserver
from ferry.server.app import create_app
from ferry.server.serving.catalog import RegistryModels

if TYPE_CHECKING:
    from ferry.monitoring.storage import MonitoringStore
    from ferry.registry import Registry


def create_platform_app(
    settings: Settings | None = None,
    *,
    control: Callable[[Callable[[], Registry]], APIRouter] | None = None,
    observers: Sequence[PredictionObserver] = (),
) -> FastAPI:
    """An app over the registry in ``settings``: models load on first request, per process."""
    from ferry.registry import Registry

    settings = settings or get_settings()
    home = settings.home.expanduser()

    def open_registry() -> Registry:
        return Registry.from_settings(settings, migrate=False)

    source = RegistryModels(
        open_registry,
        cache_dir(home) / "models",
        max_loaded=settings.max_loaded_models,
        refresh_seconds=settings.route_refresh_seconds,
        prefer_optimized=settings.prefer_optimized,
    )
    routers = [control(lambda: source.registry)] if control is not None else []
    security = None
    if settings.auth == "required":  # ``ferry server`` decides (flags, bind address)
        from ferry.server.auth import Security

        security = Security.from_settings(settings)
        observers = (*observers, security)
    app = create_app(source, settings, routers=routers, title="Ferry server", observers=observers)
    if security is not None:
        security.install(app)  # last: outermost, in front of the prediction fast path
    source.on_evict = app.state.serving.forget
    from ferry.monitoring.storage import MonitoringStore

    monitoring = MonitoringStore.from_settings(settings)  # its own database, not the registry's
    app.state.metric_sources = [_drift_gauges(monitoring), _site_gauges(monitoring)]
    return app


def _drift_gauges(store: MonitoringStore) -> Callable[[], Awaitable[bytes]]:
    """The ferry_drift_* gauges on /metrics, read from the stored drift results."""
    from ferry.monitoring.gauges import DriftGauges

    return DriftGauges(lambda: store)


def _site_gauges(store: MonitoringStore) -> Callable[[], Awaitable[bytes]]:
    """The ferry_site_* gauges on /metrics, read from the imported telemetry bundles."""
    from ferry.monitoring.gauges import StoredGauges
    from ferry.monitoring.sites import render_site_metrics

    return StoredGauges(
        lambda: store,
        lambda store: render_site_metrics(store.latest_telemetry()),
    )
