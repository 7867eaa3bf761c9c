"""Admin routes: API keys (``/api/v1/keys``) and usage for billing (``/api/v1/usage``)."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from ferry.config.settings import Settings
from ferry.durations import parse_duration
from ferry.security.database import SecurityDatabase
from ferry.security.keys import KeyStore
from ferry.security.metering import parse_day, read_usage, usage_csv, usage_json
from ferry.server.control.routing import ADMIN, actor_of, control_routes
from ferry.server.control.schemas import Body
from ferry.server.routes import RouteTable


class KeyIn(Body):
    name: str = Field(description="A label for the key (letters, digits, '.', '_', '-').")
    scopes: list[str] = Field(
        description="e.g. `predict:iris`, `publish:*`, `trust:team-*`, `read`, `admin`",
        min_length=1,
    )
    expires: str | None = Field(default=None, description="A lifetime such as `30d` or `12h`.")
    requests_per_minute: int | None = Field(default=None, ge=1)
    rows_per_day: int | None = Field(default=None, ge=1)


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    status: str
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    requests_per_minute: int | None
    rows_per_day: int | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, store it now.")


class KeyList(BaseModel):
    items: list[KeyOut]


class UsageOut(BaseModel):
    day: str
    principal: str
    key_name: str | None
    model: str
    version: str
    requests: int
    rows: int
    errors: int
    compute_ms: float


class UsageList(BaseModel):
    items: list[UsageOut]


class SecurityRoutes:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = SecurityDatabase.from_settings(settings)

    @functools.cached_property
    def keys(self) -> KeyStore:
        from ferry.security.keys import server_secret

        return KeyStore(self.database, server_secret(self.settings))

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["admin"])
        routes.add("/keys", self.list_keys, "GET", ADMIN)
        routes.add("/keys", self.create_key, "POST", ADMIN, status_code=201)
        routes.add("/keys/{key}", self.revoke_key, "DELETE", ADMIN)
        routes.add(
            "/usage",
            self.usage,
            "GET",
            ADMIN,
            response_model=UsageList,
            responses={200: {"content": {"text/csv": {}}}},
        )
        return routes

    def list_keys(self) -> KeyList:
        """Every key (never its secret): scopes, status, expiry, limits."""
        return KeyList(items=[KeyOut(**r.to_json()) for r in self.keys.all()])

    def create_key(self, request: Request, body: KeyIn) -> NewKeyOut:
        """Make a key; the answer's `key` is the only copy of it."""
        new = self.keys.create(
            body.name,
            body.scopes,
            expires_in=None if body.expires is None else parse_duration(body.expires, "expires"),
            requests_per_minute=body.requests_per_minute,
            rows_per_day=body.rows_per_day,
            actor=actor_of(request),
        )
        return NewKeyOut(key=new.token, **new.record.to_json())

    def revoke_key(self, request: Request, key: str) -> KeyList:
        """Revoke the key with this id (or every active key with this name)."""
        revoked = self.keys.revoke(key, actor=actor_of(request))
        return KeyList(items=[KeyOut(**r.to_json()) for r in revoked])

    def usage(
        self,
        since: Annotated[str | None, Query(description="First day (UTC), YYYY-MM-DD.")] = None,
        until: Annotated[str | None, Query(description="Last day (UTC), YYYY-MM-DD.")] = None,
        key: Annotated[str | None, Query(description="A key's name or id, or a principal.")] = None,
        model: Annotated[str | None, Query(description="One model.")] = None,
        format: Annotated[Literal["json", "csv"], Query(description="json or csv.")] = "json",
    ) -> Any:
        """Requests, rows, errors and compute time per key, model, version and day."""
        rows = read_usage(
            self.database,
            since=None if since is None else parse_day(since, "since"),
            until=None if until is None else parse_day(until, "until"),
            principals=None if key is None else self.principals(key),
            model=model,
        )
        if format == "csv":
            return Response(usage_csv(rows), media_type="text/csv")
        return UsageList(items=[UsageOut(**usage_json(r)) for r in rows])  # type: ignore[arg-type]

    def principals(self, key: str) -> list[str]:
        """A key name (all its keys), a key id, or a principal as stored (``jwt:<sub>``)."""
        return [r.id for r in self.keys.find(key)] or [key]
