"""Routes for aliases: list, get, set (create or move), delete, and each alias's history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from ferry.errors import AliasNotFound
from ferry.registry.filters import check_page
from ferry.registry.names import check_alias
from ferry.server.control.models import Limit, Offset
from ferry.server.control.routing import (
    PUBLISH_MODEL,
    READ_MODEL,
    RegistryProvider,
    VersionHook,
    actor_of,
    control_routes,
)
from ferry.server.control.schemas import (
    AliasHistoryPage,
    AliasIn,
    AliasOut,
    AliasPage,
    alias_event_out,
    alias_out,
)
from ferry.server.routes import RouteTable

T = TypeVar("T")


class AliasRoutes:
    def __init__(self, registry: RegistryProvider, on_version: VersionHook | None = None) -> None:
        self.registry = registry
        self.on_version = on_version  # told when an alias moves to a version

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["registry"])
        base = "/models/{name}/aliases"
        routes.add(base, self.list_aliases, "GET", READ_MODEL)
        routes.add(base + "/{alias}", self.get_alias, "GET", READ_MODEL)
        routes.add(base + "/{alias}", self.set_alias, "PUT", PUBLISH_MODEL)
        routes.add(
            base + "/{alias}",
            self.delete_alias,
            "DELETE",
            PUBLISH_MODEL,
            status_code=204,
            response_class=Response,
        )
        routes.add(base + "/{alias}/history", self.history, "GET", READ_MODEL)
        return routes

    def list_aliases(self, name: str, limit: Limit = 100, offset: Offset = 0) -> AliasPage:
        """The model's aliases, by name."""
        check_page(limit, offset)
        records = self.registry().list_aliases(name)
        return AliasPage(
            items=[alias_out(r) for r in _slice(records, limit, offset)],
            total=len(records),
            limit=limit,
            offset=offset,
        )

    def get_alias(self, name: str, alias: str) -> AliasOut:
        """The version an alias points at."""
        check_alias(alias)
        for record in self.registry().list_aliases(name):
            if record.alias == alias:
                return alias_out(record)
        raise AliasNotFound(f"model {name!r} has no alias {alias!r}", model=name, alias=alias)

    def set_alias(self, request: Request, name: str, alias: str, body: AliasIn) -> AliasOut:
        """Point the alias at a version: creates it, or moves it (kept in its history)."""
        actor = actor_of(request)
        record = self.registry().set_alias(name, alias, body.version, actor=actor)
        if self.on_version is not None:
            self.on_version(name, body.version, actor)
        return alias_out(record)

    def delete_alias(self, request: Request, name: str, alias: str) -> None:
        """Remove the alias (the version stays)."""
        self.registry().delete_alias(name, alias, actor=actor_of(request))

    def history(
        self, name: str, alias: str, limit: Limit = 100, offset: Offset = 0
    ) -> AliasHistoryPage:
        """Every move of the alias, oldest first: created, moved, deleted."""
        check_page(limit, offset)
        events = self.registry().alias_history(name, alias)
        return AliasHistoryPage(
            items=[alias_event_out(e) for e in _slice(events, limit, offset)],
            total=len(events),
            limit=limit,
            offset=offset,
        )


def _slice(items: Sequence[T], limit: int, offset: int) -> Sequence[T]:
    return items[offset : offset + limit]
