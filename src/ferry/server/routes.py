"""The one route table: each route once, with its method, path template, protocol, the scope
it needs, its endpoint and whether the fast path answers it.

Everything that knew the URL space by itself is derived from it: the FastAPI routes
(``RouteTable.install``), the fast path's matcher (``serving/fastpath.py``), the access policy
(``access.py``) and the error shape of each path (``errors.py``, by ``protocol_of``). A route
cannot be added without its access, and ``install`` refuses an app holding a route the table
does not know (one added behind its back would otherwise be reachable under no policy).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from re import Pattern
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Scope

from ferry.security.scopes import Action, Requirement, model_of

Endpoint = Callable[..., Any]
FastEndpoint = Callable[[Request], Awaitable[Response]]
Params = dict[str, str]


class Protocol(StrEnum):
    """Whose clients call a route: it decides the error body's shape and status rules."""

    NATIVE = "native"  # Ferry's JSON protocol (and KServe V1's ``:predict``)
    MLFLOW = "mlflow"  # MLflow scoring: ``{"error_code", "message"}``
    V2 = "v2"  # the Open Inference Protocol: ``{"error": message}``
    CONTROL = "control"  # the registry's REST API under /api/v1 (native shape)
    OPS = "ops"  # health, metrics and docs (native shape)


@dataclass(frozen=True, slots=True)
class Access:
    """The scope a route needs: no actions is public; the model is named by a path parameter
    (``on``), fixed (a model's own documented path), the one model of a one-model server
    (``single``, MLflow's ``/invocations``) or, when none is given, every model."""

    actions: tuple[Action, ...] = ()
    on: str | None = None
    model: str | None = None
    single: bool = False
    public_if_metrics_public: bool = False  # /metrics with FERRY_PUBLIC_METRICS=true

    def requirement(
        self, params: Mapping[str, str], *, single_model: str | None, public_metrics: bool
    ) -> Requirement | None:
        """What a request with these path ``params`` needs; None: open to everyone."""
        if not self.actions or (self.public_if_metrics_public and public_metrics):
            return None
        if self.on is not None:
            return Requirement(self.actions, model_of(params[self.on]))
        return Requirement(self.actions, single_model if self.single else self.model)


PUBLIC = Access()


def need(*actions: Action, on: str | None = None, model: str | None = None) -> Access:
    """``need(Action.READ, on="name")``: read on the model named by the ``name`` parameter."""
    return Access(tuple(actions), on=on, model=model)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # a Starlette path template: /v1/models/{name}/predict
    protocol: Protocol
    access: Access
    endpoint: Endpoint
    fast: bool = False  # answered by the fast path, before FastAPI's routing (POST only)
    options: Mapping[str, Any] = field(default_factory=dict)  # FastAPI's add_api_route options
    pattern: Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_path(self.path)[0])

    def match(self, path: str) -> Params | None:
        found = self.pattern.match(path)
        return None if found is None else found.groupdict()

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's leading literal segments (those before the first parameter)."""
        literal = self.path.split("{", 1)[0]
        parts = [p for p in literal.split("/") if p]
        if "{" in self.path and not literal.endswith("/"):
            parts = parts[:-1]  # a segment that starts literal and ends in a parameter
        return tuple(parts)


ANY_DEPTH = -1


def _segment_key(path: str) -> tuple[int, str]:
    """The bucket of a concrete path or a template: its depth and first segment (parameters
    never hold a ``/``, so a template and the paths it matches share both)."""
    head = path[1:].split("/", 1)[0]
    return path.count("/"), ("{}" if head.startswith("{") else head)


class RouteTable:
    """Routes declared by one part of the app (``protocol`` and FastAPI ``defaults`` apply to
    each), combined with ``include``; the app's own table is the union of them all."""

    def __init__(self, protocol: Protocol = Protocol.NATIVE, **defaults: Any) -> None:
        self.protocol = protocol
        self.defaults = defaults  # tags, responses, route_class for each route's FastAPI route
        self.routes: list[Route] = []
        self._index: dict[tuple[str, int, str], list[Route]] | None = None
        self._fast: dict[tuple[str, int, str], list[Route]] | None = None

    def add(
        self,
        path: str,
        endpoint: Endpoint,
        method: str,
        access: Access,
        *,
        fast: bool = False,
        protocol: Protocol | None = None,
        **options: Any,
    ) -> None:
        if fast and method != "POST":
            raise ValueError(f"the fast path takes POST only, not {method} {path}")
        merged = {**self.defaults, **options}
        if "tags" in self.defaults and "tags" in options:
            merged["tags"] = [*self.defaults["tags"], *options["tags"]]
        if "responses" in self.defaults and "responses" in options:
            merged["responses"] = {**self.defaults["responses"], **options["responses"]}
        route = Route(method, path, protocol or self.protocol, access, endpoint, fast, merged)
        self.routes.append(route)
        self._index = self._fast = None

    def include(self, other: RouteTable, prefix: str = "") -> None:
        for route in other.routes:
            self.routes.append(replace(route, path=prefix + route.path))
        self._index = self._fast = None

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def install(self, app: FastAPI) -> None:
        """Add every route to ``app``; refuse an app with a route the table does not hold."""
        for route in self.routes:
            options = dict(route.options)
            route_class = options.pop("route_class", None)
            app.router.add_api_route(
                route.path,
                route.endpoint,
                methods=[route.method],
                route_class_override=route_class,
                **options,
            )
        self.check(app)

    def check(self, app: FastAPI) -> None:
        known = {(r.method, r.path) for r in self.routes}
        for mounted in app.router.routes:
            if isinstance(mounted, APIRoute):
                methods = mounted.methods or set()
                missing = [m for m in methods if (m, mounted.path) not in known]
                if missing:
                    raise RuntimeError(
                        f"route {missing[0]} {mounted.path} is not in the route table "
                        "(server/routes.py): it would have no access rule"
                    )

    def _buckets(self, fast: bool = False) -> dict[tuple[str, int, str], list[Route]]:
        index = self._fast if fast else self._index
        if index is None:
            index = {}
            for route in self.routes:
                if route.fast or not fast:
                    depth, head = _segment_key(route.path)
                    if ":path}" in route.path:  # its parameter may hold '/': any depth
                        depth = ANY_DEPTH
                    index.setdefault((route.method, depth, head), []).append(route)
            if fast:
                self._fast = index
            else:
                self._index = index
        return index

    def match(self, method: str, path: str, *, fast: bool = False) -> tuple[Route, Params] | None:
        """The route answering ``method path`` (a route path: no mount prefix) and its
        parameters, in declaration order; a literal first segment is tried before a parameter
        in that place. ``fast``: among the fast path's routes only."""
        depth, head = _segment_key(path)
        buckets = self._buckets(fast)
        for key in ((method, depth, head), (method, depth, "{}"), (method, ANY_DEPTH, head)):
            for route in buckets.get(key, ()):
                params = route.match(path)
                if params is not None:
                    return route, params
        return None

    def fast_match(self, path: str) -> tuple[Route, Params] | None:
        """The fast path's route for a POST to ``path``: dictionary lookups and one or two
        regular expressions (about 1 µs)."""
        return self.match("POST", path, fast=True)

    def protocol_of(self, path: str) -> Protocol:
        """Whose error shape ``path`` answers in: its route's protocol (any method), else
        that of the routes sharing most of its leading segments (``/v2/nonsense`` is V2's),
        else Ferry's own."""
        for method in ("POST", "GET", "PUT", "PATCH", "DELETE"):
            found = self.match(method, path)
            if found is not None:
                return found[0].protocol
        parts = path.strip("/").split("/")
        best, protocol = 0, Protocol.NATIVE
        for route in self.routes:
            shared = 0
            for mine, theirs in zip(parts, route.segments, strict=False):
                if mine != theirs:
                    break
                shared += 1
            if shared > best:
                best, protocol = shared, route.protocol
        return protocol


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the prefix it is mounted at (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
