"""control_router(): the registry's REST API under /api/v1 (in the app with Features.control)."""

from __future__ import annotations

from ferry.config.settings import Settings, get_settings
from ferry.monitoring.storage import MonitoringStore
from ferry.server.control.aliases import AliasRoutes
from ferry.server.control.builds import build_routes
from ferry.server.control.config import ControlConfig
from ferry.server.control.keys import SecurityRoutes
from ferry.server.control.models import ModelRoutes
from ferry.server.control.monitoring import MonitoringRoutes, TelemetryRoutes
from ferry.server.control.routing import PREFIX, RegistryProvider
from ferry.server.control.uploads import UploadRoutes
from ferry.server.control.versions import VersionRoutes
from ferry.server.control.workdirs import sweep_staging
from ferry.server.routes import Protocol, RouteTable


def control_routes(
    registry_provider: RegistryProvider,
    *,
    settings: Settings | None = None,
    config: ControlConfig | None = None,
    monitoring: MonitoringStore | None = None,
) -> RouteTable:
    """Models, versions (with uploads and downloads), aliases, lineage and the audit log.

    ``registry_provider`` returns the process's open ``Registry``; it is called on every
    request (so a registry opened in the app's lifespan, after a fork, is the one used).
    ``config`` defaults to ``ControlConfig.from_settings(settings or get_settings())``.
    """
    settings = settings or get_settings()
    config = config or ControlConfig.from_settings(settings)
    sweep_staging(config.staging_root())  # what a killed server left behind
    routes = RouteTable(Protocol.CONTROL)
    # monitoring's own database (from settings unless given), shared by its routes
    monitoring = monitoring or MonitoringStore.from_settings(settings)
    builds = build_routes(registry_provider, settings or get_settings())
    routes.include(ModelRoutes(registry_provider).routes(), PREFIX)
    routes.include(
        UploadRoutes(registry_provider, config, builds.auto_build, monitoring).routes(), PREFIX
    )
    routes.include(VersionRoutes(registry_provider, config).routes(), PREFIX)
    routes.include(AliasRoutes(registry_provider, builds.auto_build).routes(), PREFIX)
    routes.include(builds.routes(), PREFIX)
    routes.include(SecurityRoutes(settings).routes(), PREFIX)
    routes.include(monitoring_routes(registry_provider, settings, monitoring).routes(), PREFIX)
    routes.include(TelemetryRoutes(monitoring, TELEMETRY_MAX_BYTES).routes(), PREFIX)
    return routes


TELEMETRY_MAX_BYTES = 64 * 1024 * 1024


def monitoring_routes(
    registry_provider: RegistryProvider, settings: Settings, store: MonitoringStore
) -> MonitoringRoutes:
    from ferry.monitoring.drift import thresholds_from_settings
    from ferry.monitoring.webhooks import WebhookConfig

    url = settings.alert_webhook_url
    return MonitoringRoutes(
        registry_provider,
        thresholds_from_settings(settings),
        WebhookConfig(url) if url else None,
        store,
    )
