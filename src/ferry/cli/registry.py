"""Registry commands over HTTP: ``ferry register``, ``models ls``, ``versions ls``, ``alias``,
``pull`` and ``lineage``. Each parses its options, calls ``ferry.client``, prints via output."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ferry.client import Client

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Ferry server (default: $FERRY_URL, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")]
OffsetOption = Annotated[int, typer.Option(min=0, help="Rows to skip.")]

models_app = typer.Typer(help="Models in the registry.", no_args_is_help=True)
versions_app = typer.Typer(help="Versions of a registered model.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases: movable names for versions.", no_args_is_help=True)


def _client(url: str | None) -> Client:
    from ferry.client import Client

    return Client(url)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        pairs[key.strip()] = value.strip()
    return pairs


def _metrics(values: list[str] | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in _pairs(values, "--metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"metric {key!r}: {value!r} is not a number", param_hint="--metric"
            ) from None
    return metrics


def _parent(value: str | None) -> int | tuple[str, int] | None:
    if value is None:
        return None
    model, sep, number = value.rpartition("/")
    if not number.isdigit() or (sep and not model):
        raise typer.BadParameter(
            f"{value!r}: give a version number (3) or MODEL/VERSION", param_hint="--parent"
        )
    return (model, int(number)) if sep else int(number)


def register_version(
    path: Annotated[
        str,
        typer.Argument(
            help="Bundle folder or .tar.gz, model file (.pkl, .joblib, .onnx ...), MLflow "
            "model folder, or predictor.py:ClassName."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Registry model name.")],
    alias: Annotated[
        str | None, typer.Option(help="Point this alias (e.g. production) at the version.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="KEY=NUMBER, e.g. acc=0.97 (repeatable).")
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    parent: Annotated[
        str | None, typer.Option(help="Parent version: N of this model, or MODEL/N.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Training data (.csv, .jsonl, .parquet): its "
            "fingerprint and row count are stored as lineage.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    reference: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Data (.csv, .parquet, .jsonl) to profile as the drift reference "
            "(default: the input example).",
        ),
    ] = None,
    requirements: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A requirements.txt.")
    ] = None,
    example: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Input example (.csv/.json) for a raw model file."
        ),
    ] = None,
    code: Annotated[
        list[Path] | None,
        typer.Option(exists=True, help="More files or folders for a custom model (repeatable)."),
    ] = None,
    flavor: Annotated[str | None, typer.Option(help="Force the flavor (default: detect).")] = None,
    code_ref: Annotated[str | None, typer.Option(help="Code reference, e.g. a git commit.")] = None,
    run_id: Annotated[str | None, typer.Option(help="The training run's id.")] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Vouch for code: needed for a code model (predictor.py:Class, an MLflow "
            "python_function folder) and for a pickle the scanner refuses; with auth on, the "
            "key needs the trust scope for the model. Recorded in the audit log.",
        ),
    ] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload PATH as a new version of NAME (the same content again returns its version)."""
    from ferry.cli.output import show_listing, show_registered, transfer_progress

    with _client(url) as client, transfer_progress(f"uploading {Path(path).name}") as progress:
        version = client.register(
            path,
            name,
            alias=alias,
            metrics=_metrics(metric),
            params=_pairs(param, "--param"),
            tags=_pairs(tag, "--tag"),
            parent=_parent(parent),
            data=data,
            description=description,
            requirements=requirements,
            example=example,
            code=code or [],
            flavor=flavor,
            code_ref=code_ref,
            run_id=run_id,
            trust=trust,
            progress=progress,
            reference=reference,
        )
    show_listing(as_json, version, lambda: show_registered(version, alias))


@models_app.command("ls")
def models_ls(
    tag: Annotated[str | None, typer.Option(help="KEY or KEY=VALUE.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Names starting with this.")] = None,
    limit: LimitOption = 100,
    offset: OffsetOption = 0,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List registered models."""
    from ferry.cli.output import show_listing, show_models

    with _client(url) as client:
        page = client.registered_models(tag=tag, prefix=prefix, limit=limit, offset=offset)
    show_listing(as_json, page, lambda: show_models(page))


@versions_app.command("ls")
def versions_ls(
    name: Annotated[str, typer.Argument(help="Registry model name.")],
    tag: Annotated[str | None, typer.Option(help="KEY or KEY=VALUE.")] = None,
    metric: Annotated[str | None, typer.Option(help="A condition such as acc>=0.9.")] = None,
    limit: LimitOption = 100,
    offset: OffsetOption = 0,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a model's versions, newest first."""
    from ferry.cli.output import show_listing, show_versions

    with _client(url) as client:
        page = client.versions(name, tag=tag, metric=metric, limit=limit, offset=offset)
    show_listing(as_json, page, lambda: show_versions(name, page))


@versions_app.command("show")
def versions_show(
    ref: Annotated[str, typer.Argument(help="iris/3, iris@production or iris.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one version: flavor, signature, metrics, lineage, aliases."""
    from ferry.cli.output import show_listing, show_version

    with _client(url) as client:
        version = client.resolve(ref)
    show_listing(as_json, version, lambda: show_version(version))


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="Registry model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    version: Annotated[int, typer.Argument(min=1, help="Version number.")],
    url: UrlOption = None,
) -> None:
    """Point ALIAS at VERSION (creates or moves it)."""
    from ferry.cli.output import show_alias

    with _client(url) as client:
        show_alias(client.set_alias(name, alias, version))


@alias_app.command("rm")
def alias_rm(
    name: Annotated[str, typer.Argument(help="Registry model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
    url: UrlOption = None,
) -> None:
    """Remove ALIAS (the version stays)."""
    from ferry.cli.output import show_lines

    with _client(url) as client:
        client.delete_alias(name, alias)
    show_lines([f"removed {name}@{alias}"])


@alias_app.command("ls")
def alias_ls(
    name: Annotated[str, typer.Argument(help="Registry model name.")],
    url: UrlOption = None,
) -> None:
    """List a model's aliases."""
    from ferry.cli.output import show_aliases

    with _client(url) as client:
        show_aliases(name, client.aliases(name))


def pull(
    ref: Annotated[str, typer.Argument(help="iris@production, iris/3, or iris.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to create (default: ./NAME-N).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace the folder if it exists.")] = False,
    url: UrlOption = None,
) -> None:
    """Download a version as a bundle folder (checksums verified), ready for ferry serve."""
    from ferry.cli.output import show_pulled, transfer_progress

    with _client(url) as client:
        version = client.resolve(ref)
        dest = out or Path(f"{version.model}-{version.version}")
        with transfer_progress(f"downloading {version.ref}") as progress:
            path = client.pull(version.ref, dest, overwrite=force, progress=progress)
    show_pulled(path, version)


def lineage(
    ref: Annotated[
        str, typer.Argument(help="iris@production, iris/3, or a model name followed by VERSION.")
    ],
    version: Annotated[
        int | None, typer.Argument(min=1, help="Version number, after a plain model name.")
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a version's ancestors and descendants, with their data and code references."""
    from ferry.cli.output import show_lineage, show_listing

    with _client(url) as client:
        if version is None:  # a reference, as pull, build and export take
            resolved = client.resolve(ref)
            ref, version = resolved.model, resolved.version
        graph = client.lineage(ref, version)
    show_listing(as_json, graph, lambda: show_lineage(graph))


def register(app: typer.Typer) -> None:
    app.command("register")(register_version)
    app.command("pull")(pull)
    app.command("lineage")(lineage)
    app.add_typer(models_app, name="models")
    app.add_typer(versions_app, name="versions")
    app.add_typer(alias_app, name="alias")
