"""``ferry build``, ``ferry base-image``, ``ferry export`` and ``ferry import``: container
images of registered versions, resolved in the local registry (FERRY_HOME or
FERRY_DATABASE_URL / FERRY_ARTIFACTS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BuilderOption = Annotated[
    str | None,
    typer.Option(help="docker, podman or buildah (default: the first that works here)."),
]
RefArgument = Annotated[
    str, typer.Argument(help="A registered version: iris, iris@production, iris/3.")
]


def _log(line: str) -> None:
    typer.echo(line, err=True)


def build(
    ref: RefArgument,
    context_only: Annotated[
        Path | None,
        typer.Option(
            "--context-only", help="Only write the build context (Dockerfile, scripts) here."
        ),
    ] = None,
    builder: BuilderOption = None,
    base: Annotated[
        str | None,
        typer.Option(help="Base image (default: localhost/ferry-base-sklearn, made here)."),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Image name (default: localhost/ferry/MODEL:VERSION).")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port the image serves on.")] = 8080,
    push: Annotated[
        str | None,
        typer.Option(
            help="Push to REGISTRY/REPO:TAG after the smoke test (credentials from "
            "$FERRY_REGISTRY_USERNAME / $FERRY_REGISTRY_PASSWORD)."
        ),
    ] = None,
    tls_verify: Annotated[
        bool, typer.Option(help="Verify the push registry's TLS certificate.")
    ] = True,
    force: Annotated[bool, typer.Option(help="Replace a non-empty --context-only folder.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Rebuild every step (no cached layers).")
    ] = False,
) -> None:
    """Build the container image of REF, ending with a smoke test inside it."""
    from ferry.cli.output import format_size, show_facts, show_lines
    from ferry.packaging.images import ImageOptions, build_image, version_context
    from ferry.registry.service import Registry

    options = ImageOptions(
        builder=builder,
        base=base,
        tag=tag,
        port=port,
        push=push,
        tls_verify=tls_verify,
        no_cache=no_cache,
    )
    with Registry.from_settings() as registry:
        record = registry.resolve(ref)
        if context_only is not None:
            path = version_context(registry, record, context_only, options, overwrite=force)
            show_lines([f"wrote the build context of {record.model} {record.version} to {path}"])
            return
        built = build_image(registry, record, options, _log)
    facts = [
        ("image", built.image),
        ("size", format_size(built.size)),
        ("smoke test", built.smoke),
        ("context sha256", built.context_sha256),
    ]
    if built.pushed:
        facts.append(("pushed", built.pushed))
    show_facts(f"{record.model} version {record.version}", facts)


def base_image(
    stack: Annotated[
        str | None, typer.Option(help="Also make a stack image: sklearn (numpy, pandas, ...).")
    ] = None,
    builder: BuilderOption = None,
    rebuild: Annotated[bool, typer.Option(help="Make it again even if it exists.")] = False,
) -> None:
    """Make the Debian base image (and a stack image) locally, from Debian packages."""
    from ferry.cli.output import format_size, show_lines
    from ferry.packaging.base_image import ensure_base, ensure_stack
    from ferry.packaging.builders import choose_builder

    chosen = choose_builder(builder)
    if stack:
        image = ensure_stack(chosen, stack, _log, rebuild=rebuild)
    else:
        image = ensure_base(chosen, _log, rebuild=rebuild)
    show_lines([f"{image} ({format_size(chosen.image_size(image))})"])


def export(
    ref: RefArgument,
    archive: Annotated[Path, typer.Argument(help="The OCI archive to write (image.tar).")],
    builder: BuilderOption = None,
    tag: Annotated[
        str | None, typer.Option(help="Image to export (default: localhost/ferry/MODEL:VERSION).")
    ] = None,
    to_store: Annotated[
        bool,
        typer.Option(
            "--to-store", help="Also keep a copy in the artifact store (images/MODEL/VERSION/)."
        ),
    ] = False,
) -> None:
    """Write REF's built image as an OCI archive, to carry into a firewalled site."""
    from ferry.cli.output import format_size, show_lines
    from ferry.packaging.archive import export_version
    from ferry.registry.service import Registry

    with Registry.from_settings() as registry:
        record = registry.resolve(ref)
        result = export_version(
            registry, record, archive, builder=builder, tag=tag, to_store=to_store, log=_log
        )
    lines = [f"wrote {result.image} to {result.path} ({format_size(result.size)})"]
    if result.store_key:
        lines.append(f"stored a copy as {result.store_key}")
    show_lines(lines)


def import_(
    archive: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="An archive from ferry export.")
    ],
    builder: BuilderOption = None,
) -> None:
    """Load an image archive written by `ferry export`."""
    from ferry.cli.output import show_lines
    from ferry.packaging.builders import choose_builder
    from ferry.packaging.images import import_image

    show_lines([f"imported {import_image(choose_builder(builder), archive, _log)}"])


def register(app: typer.Typer) -> None:
    app.command("build")(build)
    app.command("base-image")(base_image)
    app.command("export")(export)
    app.command("import")(import_)
