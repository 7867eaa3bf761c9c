"""The typer app: one command group per module, FerryError -> message and exit code 1."""

from __future__ import annotations

import sys

import typer

from ferry.errors import FerryError

app = typer.Typer(
    name="ferry",
    help="Carry a trained model to a fast, validated REST API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def main() -> None:
    try:
        app()
    except FerryError as exc:
        from ferry.cli.output import show_error

        show_error(exc)
        sys.exit(1)


@app.callback()
def _options(
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        help="API key or JWT for the server (default: $FERRY_API_KEY).",
        show_default=False,
    ),
) -> None:
    """Carry a trained model to a fast, validated REST API."""
    if api_key:
        import os

        os.environ["FERRY_API_KEY"] = api_key  # what every ferry.client.Client reads


@app.command("version")
def version() -> None:
    """Print Ferry's version."""
    from ferry import __version__
    from ferry.cli.output import show_lines

    show_lines([__version__])


def _register() -> None:
    """Attach each command module (they import only typer at module level)."""
    from ferry.cli import (
        build,
        certs,
        deploy,
        keys,
        models,
        package,
        predict,
        registry,
        serve,
        server,
        usage,
    )
    from ferry.cli import logs as logs_commands

    serve.register(app)
    predict.register(app)
    models.register(app)
    server.register(app)
    registry.register(app)
    deploy.register(app)
    package.register(app)
    certs.register(app)
    build.register(app)
    keys.register(app)
    usage.register(app)
    logs_commands.register(app)
    from ferry.cli import monitoring

    monitoring.register(app)


_register()
