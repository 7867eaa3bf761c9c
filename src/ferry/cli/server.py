"""``ferry server`` (registry + every model), ``ferry db upgrade`` and ``ferry gc``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from ferry.cli.exposure import auth_mode
from ferry.cli.serve import (
    CertOption,
    KeyOption,
    public_url,
    share_metrics_between_workers,
    tls_options,
)

db_app = typer.Typer(help="The registry's metadata database.", no_args_is_help=True)


def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: one per core).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="Log level (default: FERRY_LOG_LEVEL, INFO).")
    ] = None,
    prefer_optimized: Annotated[
        bool,
        typer.Option(
            help="Route names and aliases to the ONNX copy `ferry optimize` made of their "
            "version, when there is one ($FERRY_PREFER_OPTIMIZED)."
        ),
    ] = False,
    ssl_certfile: CertOption = None,
    ssl_keyfile: KeyOption = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth", help="Require an API key or JWT (also FERRY_AUTH=required; see `ferry keys`)."
        ),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Serve WITHOUT auth on a non-loopback address (not recommended)."
        ),
    ] = False,
    log_predictions: Annotated[
        str | None,
        typer.Option(
            help="Log requests with inputs and outputs (for ferry logs, replay, feedback): "
            "off, all or a sample fraction like 0.1 [default: $FERRY_PREDICTION_LOG, else all]."
        ),
    ] = None,
) -> None:
    """Serve the registry API (/api/v1) and every registered model (/v1, /v2, /mlflow).

    Auth is on with --auth or FERRY_AUTH=required, and whenever HOST is not a loopback
    address unless --insecure is given."""
    from ferry.server.workers import run, start_loading

    start_loading()
    tls = tls_options(ssl_certfile, ssl_keyfile)
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        share_metrics_between_workers()
    from ferry.cli.output import show_banner
    from ferry.config.logging import configure_from_settings, uvicorn_options
    from ferry.config.settings import get_settings
    from ferry.registry import Registry
    from ferry.server.app import Features, create_app
    from ferry.server.monitoring import resolve_log_setting
    from ferry.server.platform import registry_source

    settings = get_settings()
    level = configure_from_settings(settings, log_level)
    if prefer_optimized:
        settings = settings.model_copy(update={"prefer_optimized": True})
    auth_on, warning = auth_mode(host, auth=auth, insecure=insecure, setting=settings.auth)
    settings = settings.model_copy(update={"auth": "required" if auth_on else "off"})
    # migrate once, here; workers open the store already at the newest schema
    Registry.from_settings(settings, migrate=True).close()
    features = Features(
        control=True,
        security=auth_on,
        monitoring=True,
        prediction_log=resolve_log_setting(log_predictions, settings, "all"),
        drift_jobs=True,
        alerting=True,
    )
    app = create_app(settings, registry_source(settings), features)
    base_url = public_url(host, port, tls)
    notes = auth_notes(settings) if auth_on else [warning or "  auth: off (loopback only)"]
    show_banner(
        [
            f"Ferry server on {base_url} ({workers} workers, home {settings.home})",
            *notes,
            f"  registry API: {base_url}/api/v1/models   docs: {base_url}/docs",
            f"  predict: curl -s {base_url}/v1/models/<name>/predict "
            "-H 'Content-Type: application/json' -d '{\"instances\": [...]}'",
        ]
    )
    options: dict[str, Any] = {**uvicorn_options(level), **tls}
    run(app, host, port, workers, options)


def auth_notes(settings: Any) -> list[str]:
    from ferry.security.keys import KeyStore

    store = KeyStore.from_settings(settings)
    try:
        keys = store.count_active()
    finally:
        store.database.close()
    jwt = "on" if settings.jwt_secret or settings.jwt_jwks else "off"
    lines = [f"  auth: on ({keys} active API keys, JWT {jwt})"]
    if keys == 0 and jwt == "off":
        lines.append("  no credentials exist yet: ferry keys create --name admin --scope admin")
    return lines


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the registry database (FERRY_DATABASE_URL or FERRY_HOME) to the newest schema."""
    from ferry.cli.output import show_lines
    from ferry.config.paths import database_url
    from ferry.config.settings import get_settings
    from ferry.db.engine import redact
    from ferry.db.migrations import upgrade

    url = database_url(get_settings())
    upgrade(url)
    show_lines([f"database {redact(url)} is at the newest schema"])


def gc(
    grace: Annotated[
        float, typer.Option(help="Keep unreferenced blobs younger than this many seconds.")
    ] = 3600.0,
) -> None:
    """Delete artifact blobs that no version references (left by interrupted uploads), and
    upload staging folders no running server holds."""
    from ferry.cli.output import show_lines
    from ferry.config.settings import get_settings
    from ferry.registry import Registry
    from ferry.server.control.config import ControlConfig
    from ferry.server.control.workdirs import sweep_staging

    with Registry.from_settings() as registry:
        report = registry.gc(grace_seconds=grace)
    staged = sweep_staging(ControlConfig.from_settings(get_settings()).staging_root())
    show_lines(
        [
            f"scanned {report.scanned} blobs, {report.referenced} referenced",
            f"removed {staged} staging folders left by stopped servers",
            f"deleted {len(report.deleted)} ({report.bytes_freed} bytes), "
            f"kept {report.kept_recent} recent, swept {report.incomplete_removed} incomplete",
            *[f"MISSING blob for a version: {key}" for key in report.missing],
        ]
    )


def register(app: typer.Typer) -> None:
    app.command("server")(server)
    app.command("gc")(gc)
    app.add_typer(db_app, name="db")
