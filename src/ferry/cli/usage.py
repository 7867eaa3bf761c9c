"""``ferry usage``: predictions per key, model, version and day, for invoicing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from ferry.security.metering import UsageRow


def usage(
    since: Annotated[
        str | None, typer.Option(help="First day (UTC), e.g. 2026-11-01.", show_default=False)
    ] = None,
    until: Annotated[str | None, typer.Option(help="Last day (UTC).", show_default=False)] = None,
    key: Annotated[
        str | None, typer.Option(help="A key's name or id (or jwt:<subject>).", show_default=False)
    ] = None,
    model: Annotated[str | None, typer.Option(help="One model.", show_default=False)] = None,
    format: Annotated[
        Literal["table", "csv", "json"], typer.Option("--format", help="table, csv or json.")
    ] = "table",
    url: Annotated[
        str | None,
        typer.Option(
            help="Ask this server (GET /api/v1/usage, needs an admin key) instead of "
            "reading the local store.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Usage from the local store (FERRY_HOME / FERRY_DATABASE_URL) or a server (--url)."""
    from ferry.cli.output import show_listing
    from ferry.security.metering import usage_csv, usage_json

    if url is not None:
        items = _remote(url, since=since, until=until, key=key, model=model)
    else:
        items = [usage_json(r) for r in _local(since=since, until=until, key=key, model=model)]
    if format == "csv":
        from ferry.security.metering import UsageRow

        text = usage_csv([UsageRow(**item) for item in items])  # type: ignore[arg-type]
        typer.echo(text, nl=False)
        return
    show_listing(format == "json", items, lambda: _show_usage(items))


def _show_usage(items: list[dict[str, Any]]) -> None:
    from ferry.cli.output import show_lines, show_table
    from ferry.security.metering import CSV_COLUMNS

    if not items:
        show_lines(["no usage recorded for these filters"])
        return
    show_table(
        "Usage",
        list(CSV_COLUMNS),
        [
            [f"{item[c]:.1f}" if c == "compute_ms" else (item[c] or "-") for c in CSV_COLUMNS]
            for item in items
        ],
    )


def _local(
    *, since: str | None, until: str | None, key: str | None, model: str | None
) -> list[UsageRow]:
    from ferry.config.settings import get_settings
    from ferry.security.keys import KeyStore
    from ferry.security.metering import parse_day, read_usage

    store = KeyStore.from_settings(get_settings())
    try:
        store.database.migrate()
        principals = None
        if key is not None:
            principals = [r.id for r in store.find(key)] or [key]
        return read_usage(
            store.database,
            since=None if since is None else parse_day(since, "since"),
            until=None if until is None else parse_day(until, "until"),
            principals=principals,
            model=model,
        )
    finally:
        store.database.close()


def _remote(
    url: str, *, since: str | None, until: str | None, key: str | None, model: str | None
) -> list[dict[str, object]]:
    from ferry.client import Client

    with Client(url) as client:
        return client.usage(since=since, until=until, key=key, model=model)


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
