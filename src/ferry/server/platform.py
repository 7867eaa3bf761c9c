"""``ferry server``'s parts over the registry: the model source and the /metrics gauges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ferry.config.paths import cache_dir
from ferry.config.settings import Settings, get_settings
from ferry.server.serving.catalog import RegistryModels

if TYPE_CHECKING:
    from ferry.monitoring.storage import MonitoringStore
    from ferry.registry import Registry


def registry_source(settings: Settings | None = None) -> RegistryModels:
    """The model source of ``ferry server``: every registered model, loaded on first request,
    per process (the registry is opened after the fork)."""
    from ferry.registry import Registry

    settings = settings or get_settings()

    def open_registry() -> Registry:
        return Registry.from_settings(settings, migrate=False)

    return RegistryModels(
        open_registry,
        cache_dir(settings.home.expanduser()) / "models",
        max_loaded=settings.max_loaded_models,
        refresh_seconds=settings.route_refresh_seconds,
        prefer_optimized=settings.prefer_optimized,
    )


def registry_gauges(store: MonitoringStore) -> list[Callable[[], Awaitable[bytes]]]:
    """The /metrics text ``ferry server`` adds: drift gauges and the sites' telemetry, read
    from monitoring's own database."""
    return [_drift_gauges(store), _site_gauges(store)]


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
