"""``ferry serve PATH``: one model behind the three protocols."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer


def serve(
    path: Annotated[
        str, typer.Argument(help="Bundle folder, model file, MLflow folder or file.py:Class.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    name: Annotated[
        str | None, typer.Option(help="Model name (default: bundle name or file stem).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    log_predictions: Annotated[
        str | None,
        typer.Option(
            help="Log requests with inputs and outputs (for ferry logs, replay, feedback): "
            "off, all or a sample fraction like 0.1 [default: $FERRY_PREDICTION_LOG, else off]."
        ),
    ] = None,
) -> None:
    """Serve PATH over Ferry's JSON protocol, MLflow's /invocations and Open Inference V2."""
    from ferry.cli.output import show_serving
    from ferry.config.logging import configure_logging

    if workers > 1:
        share_metrics_between_workers()
    from ferry.model.loaded import load
    from ferry.server.app import create_app

    configure_logging(log_level)
    started = time.perf_counter()
    model = load(Path(path))
    load_seconds = time.perf_counter() - started
    if name:
        model.manifest = model.manifest.model_copy(update={"name": name})
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    show_serving(model.name, base_url, curl_example(model, base_url))
    app = create_app([model])
    _monitor(app, log_predictions)
    app.state.serving.metrics.model_load_seconds.labels(model.name, model.version).set(load_seconds)
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


def _monitor(app: Any, log_predictions: str | None) -> None:
    """Output metrics always; the prediction log when asked (its table migrated here, once,
    before any worker forks)."""
    from ferry.config.paths import database_url
    from ferry.config.settings import get_settings
    from ferry.monitoring.predlog import LogPolicy
    from ferry.registry.migrations import upgrade
    from ferry.server.monitoring import attach_monitoring, resolve_log_setting

    settings = get_settings()
    choice = resolve_log_setting(log_predictions, settings, "off")
    if LogPolicy.parse(choice).enabled:
        upgrade(database_url(settings))
    attach_monitoring(app, settings, prediction_log=choice)


def share_metrics_between_workers() -> None:
    """Point prometheus_client at a fresh folder before anything imports it (it reads the
    variable once, at import), so every worker's samples add up in /metrics."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="ferry-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    atexit.register(shutil.rmtree, folder, True)


def curl_example(model: Any, base_url: str) -> str:
    """A ready-to-paste curl command predicting the model's first example row."""
    import orjson

    from ferry.server.serving.schemas import example_records

    records = example_records(model, limit=1) or [{c: 0 for c in model.signature.names}]
    body = orjson.dumps({"instances": records}).decode()
    url = f"{base_url}/v1/models/{model.name}/predict"
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
