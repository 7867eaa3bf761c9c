"""``ferry package wheel REF``: a registered version as a pip-installable Python package."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

package_app = typer.Typer(help="Ship a registered version as a package.", no_args_is_help=True)


@package_app.command("wheel")
def wheel(
    ref: Annotated[str, typer.Argument(help="iris@production, iris/3, or iris.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the wheel.")] = Path("dist"),
    upload: Annotated[
        str | None,
        typer.Option(
            help="Package index to publish to (twine's upload URL); credentials from the URL "
            "or $TWINE_USERNAME / $TWINE_PASSWORD.",
            show_default=False,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Ferry server (default: $FERRY_URL, else http://127.0.0.1:8000).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build ferry-model-NAME (version = the registry's) with predict(rows) and load()."""
    from ferry.cli.output import show_facts
    from ferry.client import Client
    from ferry.packaging.wheel import build_wheel, upload_wheel

    with Client(url) as client, tempfile.TemporaryDirectory(prefix="ferry-wheel-") as scratch:
        version = client.resolve(ref)
        bundle = client.pull(f"{version.model}/{version.version}", Path(scratch) / "bundle")
        built = build_wheel(bundle, out)
    facts = [
        ("wheel", str(built.path)),
        ("install", f"pip install {built.distribution}=={built.version}"),
        ("use", f"import {built.package}; {built.package}.predict(rows)"),
        ("sha256", built.sha256),
    ]
    if upload:
        upload_wheel(
            built,
            upload,
            username=os.environ.get("TWINE_USERNAME"),
            password=os.environ.get("TWINE_PASSWORD"),
        )
        facts.append(("uploaded to", upload))
    show_facts(f"{built.distribution} {built.version} ({ref})", facts)


def register(app: typer.Typer) -> None:
    app.add_typer(package_app, name="package")
