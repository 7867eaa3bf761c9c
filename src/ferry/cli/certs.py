"""``ferry certs dev``: a self-signed certificate for trying ``--ssl-certfile/--ssl-keyfile``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

certs_app = typer.Typer(help="TLS certificates.", no_args_is_help=True)


@certs_app.command("dev")
def dev(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", file_okay=False, help="Folder to write into (default: $FERRY_HOME/certs)."
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(help="Names and addresses to certify (default: localhost, 127.0.0.1, ::1)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Days the certificate is valid.")] = 365,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
) -> None:
    """Make a self-signed certificate and key for localhost (development only)."""
    from ferry.cli.output import show_lines
    from ferry.config.settings import get_settings
    from ferry.security.certs import DEFAULT_HOSTS, make_dev_certificate

    folder = out if out is not None else get_settings().home / "certs"
    made = make_dev_certificate(
        folder, hosts=tuple(host) if host else DEFAULT_HOSTS, days=days, overwrite=force
    )
    show_lines(
        [
            f"certificate {made.certfile} (for {', '.join(made.hosts)}, "
            f"valid until {made.not_after:%Y-%m-%d})",
            f"key         {made.keyfile}",
            f"sha256      {made.sha256}",
            f"serve with: ferry server --ssl-certfile {made.certfile} --ssl-keyfile {made.keyfile}",
            f"trust it:   curl --cacert {made.certfile} https://localhost:8000/healthz",
        ]
    )


def register(app: typer.Typer) -> None:
    app.add_typer(certs_app, name="certs")
