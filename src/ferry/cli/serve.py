"""``ferry serve PATH``: one model behind the three protocols."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer

CertOption = Annotated[
    Path | None,
    typer.Option(
        "--ssl-certfile",
        exists=True,
        dir_okay=False,
        help="Serve HTTPS with this certificate (PEM; `ferry certs dev` makes one).",
    ),
]
# what the prediction log and --auth need (the metadata database); plain serving does not
DATABASE_LIBRARIES = ("sqlalchemy", "alembic")
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--ssl-keyfile", exists=True, dir_okay=False, help="The certificate's private key (PEM)."
    ),
]


def serve(
    path: Annotated[
        str, typer.Argument(help="Bundle folder, model file, MLflow folder or file.py:Class.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="PORT", help="Port to listen on ($PORT, as PaaS platforms set).")
    ] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: one per core).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name (default: bundle name or file stem).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="Log level (default: FERRY_LOG_LEVEL, INFO).")
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Load the model even if the scanner refuses it: a pickle importing names "
            "outside the allowlist, or a code model (file.py:Class, an MLflow python_function).",
        ),
    ] = False,
    ssl_certfile: CertOption = None,
    ssl_keyfile: KeyOption = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require an API key (from FERRY_HOME's store, see `ferry keys`) or a JWT; "
            "also FERRY_AUTH=required. Default: on when HOST is not a loopback address; "
            "--no-auth serves without keys there too (with a warning).",
            show_default=False,
        ),
    ] = None,
    log_predictions: Annotated[
        str | None,
        typer.Option(
            help="Log requests with inputs and outputs (for ferry logs, replay, feedback): "
            "off, all or a sample fraction like 0.1 [default: $FERRY_PREDICTION_LOG, else off]."
        ),
    ] = None,
) -> None:
    """Serve PATH over Ferry's JSON protocol, MLflow's /invocations and Open Inference V2.

    Pickles are scanned before they are loaded; one that imports names outside the allowlist,
    and a code model (file.py:Class, an MLflow python_function folder), are refused unless
    --trust is given.
    """
    from ferry.cli.output import show_serving
    from ferry.config.logging import configure_from_settings, uvicorn_options
    from ferry.server.workers import run, start_loading

    start_loading()
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        share_metrics_between_workers()
    from ferry.cli.exposure import auth_mode
    from ferry.config.settings import get_settings
    from ferry.server.serving.isolated import load_local
    from ferry.server.state import ferry_state

    level = configure_from_settings(get_settings(), log_level)
    tls = tls_options(ssl_certfile, ssl_keyfile)
    auth_on, warning = auth_mode(
        host,
        auth=auth is True,
        insecure=auth is False,
        setting=get_settings().auth,
        off_flag="--no-auth",
    )
    check_database_features(auth=auth_on, log_predictions=log_predictions)
    check_pickles(path, trust=trust)
    started = time.perf_counter()
    model = load_local(Path(path))  # check_pickles has decided; a code bundle is sandboxed
    load_seconds = time.perf_counter() - started
    if name:
        model.manifest = model.manifest.model_copy(update={"name": name})
    base_url = public_url(host, port, tls)
    show_serving(model.name, base_url, curl_example(model, base_url))
    if warning or auth_on:
        from ferry.cli.output import show_banner

        show_banner([warning or auth_note(host)])
    app = serve_app(model, auth=auth_on, log_predictions=log_predictions)
    metrics = ferry_state(app).serving.metrics
    metrics.model_load_seconds.labels(model.name, model.version).set(load_seconds)
    options: dict[str, Any] = {**uvicorn_options(level), **tls}
    run(app, host, port, workers, options)


def tls_options(certfile: Path | None, keyfile: Path | None) -> dict[str, str]:
    """uvicorn's TLS options; both files or neither."""
    if (certfile is None) != (keyfile is None):
        missing = "--ssl-keyfile" if keyfile is None else "--ssl-certfile"
        raise typer.BadParameter(f"HTTPS needs both files: add {missing}", param_hint=missing)
    if certfile is None or keyfile is None:
        return {}
    import ssl

    try:  # a wrong pair fails here, with a message, not in every worker
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise typer.BadParameter(
            f"cannot use {certfile} with {keyfile}: {exc}", param_hint="--ssl-certfile"
        ) from exc
    return {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}


def auth_note(host: str) -> str:
    from ferry.cli.exposure import is_loopback

    why = "" if is_loopback(host) else f"; {host} is not a loopback address (--no-auth: none)"
    return f"  auth: on (API keys from FERRY_HOME, see `ferry keys`{why})"


def public_url(host: str, port: int, tls: dict[str, str]) -> str:
    scheme = "https" if tls else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    return f"{scheme}://{shown}:{port}"


def check_pickles(path: str, *, trust: bool) -> None:
    """Scan the pickles a local model would unpickle and class it as data or code; refuse
    unsafe pickles and code models (a custom class, an MLflow python_function folder) unless
    --trust says the user knows where the files came from."""
    from ferry.model.scanner.scan import enforce, scan_model

    report = scan_model(Path(path), trust=trust)
    enforce(report, hint="pass --trust to load it anyway if you know where it came from")
    if not report.ok:
        from ferry.cli.output import show_lines

        what = ", ".join(report.unsafe_globals) or "; ".join(report.errors.values())
        if report.pickles_ok:
            what = "; ".join(report.kind.reasons)
        show_lines([f"warning: loading a model the scanner refuses (--trust): {what}"])


def serve_app(model: Any, *, auth: bool, log_predictions: str | None = None) -> Any:
    """The app for one model: monitoring always (the prediction log when asked), security
    when ``auth`` (the caller decided: ferry.cli.exposure.auth_mode, FERRY_AUTH included)."""
    from ferry.config.settings import get_settings
    from ferry.server.app import Features, create_app
    from ferry.server.monitoring import resolve_log_setting

    settings = get_settings()
    choice = resolve_log_setting(log_predictions, settings, "off")
    features = Features(security=auth, monitoring=True, prediction_log=choice)
    return create_app(settings, [model], features)


def check_database_features(*, auth: bool, log_predictions: str | None) -> None:
    """The prediction log and --auth keep their data in the metadata database: SQLAlchemy and
    Alembic must be there, else a ConfigError (before anything is loaded or printed) saying how
    to get them. Serving images leave them out (about 30 MB); plain serving never imports them.
    """
    import importlib.util

    from ferry.config.settings import get_settings
    from ferry.errors import ConfigError
    from ferry.monitoring.predlog import LogPolicy
    from ferry.server.monitoring import resolve_log_setting

    settings = get_settings()
    choice = resolve_log_setting(log_predictions, settings, "off")
    features = [f"--log-predictions {choice}"] if LogPolicy.parse(choice).enabled else []
    if auth:
        features.append("--auth (API keys live in the metadata database)")
    if not features:
        return
    feature = " and ".join(features)
    missing = [name for name in DATABASE_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{feature} needs the metadata database libraries, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed (Ferry's serving images "
            "leave them out to stay small): add sqlalchemy and alembic (and psycopg[binary] "
            "for PostgreSQL) to the version's requirements and build the image again, or "
            "serve it with `ferry server`",
            missing=missing,
        )


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
