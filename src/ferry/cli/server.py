"""``ferry server`` (registry + every model), ``ferry db upgrade`` and ``ferry gc``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from ferry.cli.serve import share_metrics_between_workers

db_app = typer.Typer(help="The registry's metadata database.", no_args_is_help=True)


def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: one per core).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    log_predictions: Annotated[
        str | None,
        typer.Option(
            help="Log requests with inputs and outputs (for ferry logs, replay, feedback): "
            "off, all or a sample fraction like 0.1 [default: $FERRY_PREDICTION_LOG, else all]."
        ),
    ] = None,
) -> None:
    """Serve the registry API (/api/v1) and every registered model (/v1, /v2, /mlflow)."""
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        share_metrics_between_workers()
    from ferry.cli.output import show_lines
    from ferry.config.logging import configure_logging
    from ferry.config.settings import get_settings
    from ferry.registry import Registry
    from ferry.server.control import control_router
    from ferry.server.monitoring import attach_monitoring, resolve_log_setting
    from ferry.server.platform import create_platform_app

    configure_logging(log_level)
    settings = get_settings()
    # migrate once, here; workers open the store already at the newest schema
    Registry.from_settings(settings, migrate=True).close()
    app = create_platform_app(settings, control=control_router)
    from ferry.server.alerting import attach_drift_job, performance_webhook, webhook_config

    webhook = webhook_config(settings)
    attach_monitoring(
        app,
        settings,
        prediction_log=resolve_log_setting(log_predictions, settings, "all"),
        alert_hooks=[performance_webhook(webhook)] if webhook else [],
    )
    attach_drift_job(app, settings, lambda: app.state.serving.models.registry)
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    show_lines(
        [
            f"Ferry server on {base_url} ({workers} workers, home {settings.home})",
            f"  registry API: {base_url}/api/v1/models   docs: {base_url}/docs",
            f"  predict: curl -s {base_url}/v1/models/<name>/predict "
            "-H 'Content-Type: application/json' -d '{\"instances\": [...]}'",
        ]
    )
    options: dict[str, Any] = {"log_level": log_level, "access_log": False}
    if workers == 1:
        import gc

        import uvicorn

        # what is loaded now lives as long as the process: keep it out of the collector's
        # scans (1000-row requests create enough objects to trigger many; +18% rows/s)
        gc.collect()
        gc.freeze()
        uvicorn.run(app, host=host, port=port, **options)
        return
    from ferry.server.workers import Supervisor, bind_socket

    Supervisor(app, bind_socket(host, port), workers, options).run()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the registry database (FERRY_DATABASE_URL or FERRY_HOME) to the newest schema."""
    from ferry.cli.output import show_lines
    from ferry.config.paths import database_url
    from ferry.config.settings import get_settings
    from ferry.registry.metadata.engine import redact
    from ferry.registry.migrations import upgrade

    url = database_url(get_settings())
    upgrade(url)
    show_lines([f"database {redact(url)} is at the newest schema"])


def gc(
    grace: Annotated[
        float, typer.Option(help="Keep unreferenced blobs younger than this many seconds.")
    ] = 3600.0,
) -> None:
    """Delete artifact blobs that no version references (left by interrupted uploads)."""
    from ferry.cli.output import show_lines
    from ferry.registry import Registry

    with Registry.from_settings() as registry:
        report = registry.gc(grace_seconds=grace)
    show_lines(
        [
            f"scanned {report.scanned} blobs, {report.referenced} referenced",
            f"deleted {len(report.deleted)} ({report.bytes_freed} bytes), "
            f"kept {report.kept_recent} recent, swept {report.incomplete_removed} incomplete",
            *[f"MISSING blob for a version: {key}" for key in report.missing],
        ]
    )


def register(app: typer.Typer) -> None:
    app.command("server")(server)
    app.command("gc")(gc)
    app.add_typer(db_app, name="db")
