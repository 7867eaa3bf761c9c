"""``ferry keys create|list|revoke``: API keys in the local store (FERRY_HOME or
FERRY_DATABASE_URL), no server needed, so the first admin key can be made before starting one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ferry.security.keys import KeyRecord, KeyStore

keys_app = typer.Typer(
    help="API keys (stored hashed in the registry database).", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]


def _store() -> KeyStore:
    from ferry.config.settings import get_settings
    from ferry.security.keys import KeyStore

    store = KeyStore.from_settings(get_settings())
    store.database.migrate()
    return store


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="A label for the key, e.g. ci.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help="read, predict, publish, trust (vouch for code models) or admin, "
            "optionally :<model glob> (repeatable).",
        ),
    ],
    expires: Annotated[
        str | None, typer.Option(help="Lifetime such as 30d, 12h or 90m (default: none).")
    ] = None,
    requests_per_minute: Annotated[
        int | None, typer.Option(min=1, help="Rate limit (answered with 429 beyond).")
    ] = None,
    rows_per_day: Annotated[
        int | None, typer.Option(min=1, help="Rows predicted per UTC day.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create a key and print it, once: only a hash of it is stored."""
    from ferry.cli.output import show_json, show_lines
    from ferry.durations import parse_duration

    store = _store()
    try:
        new = store.create(
            name,
            scope,
            expires_in=None if expires is None else parse_duration(expires, "--expires"),
            requests_per_minute=requests_per_minute,
            rows_per_day=rows_per_day,
        )
    finally:
        store.database.close()
    if json:
        show_json({"key": new.token, **new.record.to_json()})
        return
    record = new.record
    show_lines(
        [
            new.token,
            f"key {record.id} ({record.name}): {' '.join(str(s) for s in record.scopes)}"
            + (f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else ""),
            "Store it now: it is not shown again. Send it as 'Authorization: Bearer <key>', "
            "X-API-Key, or FERRY_API_KEY / --api-key for the CLI.",
        ]
    )


@keys_app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    json: JsonOption = False,
) -> None:
    """The keys (never their secrets), with scopes, status and limits."""
    from ferry.cli.output import show_listing

    store = _store()
    try:
        records = store.all(include_revoked=all_keys)
    finally:
        store.database.close()
    show_listing(json, [r.to_json() for r in records], lambda: _show_keys(records))


def _show_keys(records: list[KeyRecord]) -> None:
    from ferry.cli.output import show_table

    show_table(
        "API keys",
        ["id", "name", "scopes", "status", "created", "expires", "limits"],
        [
            [
                r.id,
                r.name,
                " ".join(str(s) for s in r.scopes),
                r.status(),
                f"{r.created_at:%Y-%m-%d %H:%M}",
                f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "-",
                _limits(r.requests_per_minute, r.rows_per_day),
            ]
            for r in records
        ],
    )


@keys_app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="A key id, or a name (revokes all its keys).")],
) -> None:
    """Revoke a key: servers refuse it within FERRY_AUTH_CACHE_SECONDS (0.5 s, at most 1 s)."""
    from ferry.cli.output import show_lines

    store = _store()
    try:
        revoked = store.revoke(key)
    finally:
        store.database.close()
    show_lines([f"revoked key {r.id} ({r.name})" for r in revoked])


def _limits(per_minute: int | None, per_day: int | None) -> str:
    parts = []
    if per_minute is not None:
        parts.append(f"{per_minute} req/min")
    if per_day is not None:
        parts.append(f"{per_day} rows/day")
    return ", ".join(parts) or "-"


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
