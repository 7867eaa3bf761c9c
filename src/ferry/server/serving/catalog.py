"""Every registered version, loaded on first use in this worker process (``ferry server``).

A request names ``iris`` (the ``production`` alias when set, else the latest version),
``iris@staging`` or ``iris`` + version 3. Names resolve to version numbers through a route
table that a background task refreshes every ``refresh_seconds``: when an alias moves, the
new version is loaded and checked first, then the route swaps, so traffic switches within a
second and no request waits for (or fails during) the load. At most ``max_loaded`` versions
stay in memory, least recently used first out.

When the registry database cannot be reached, the routes stay as last read: a name or alias
this worker has served keeps answering from its loaded version (a route is dropped only when
the registry says its model or alias is gone), one never served answers 503
``database_unavailable``, and the refresh retries every second until the database answers
again, then carries on as before, with no restart. Reporting ``ready`` all along is on
purpose: a readiness probe that failed with the database would take every replica out of
its Service at once, turning an outage of the control plane into one of every prediction;
``/readyz`` says ``"database": "unreachable"`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from ferry.config.logging import bind_model
from ferry.errors import (
    BundleError,
    DatabaseUnavailable,
    FerryError,
    FlavorError,
    InvalidRequest,
    ModelLoadFailed,
    NotFound,
    NotReady,
    StorageError,
)
from ferry.model.loaded import LoadedModel
from ferry.server.serving.isolated import load_version
from ferry.server.serving.repository import ExampleCheck, check_example

if TYPE_CHECKING:
    from ferry.registry import Registry

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (model, version)
Route = tuple[str, str]  # (model, alias or "" for the default route)
# while the database is unreachable, how often the refresh tries it: connection attempts
# against a stopped PostgreSQL fail at once, and each logs a warning, so once a second keeps
# recovery within a second without 4 warnings a second per worker
DOWN_REFRESH_SECONDS = 1.0


@dataclass(slots=True)
class RegistryModels:
    """A ModelSource over a registry; one per worker process (it owns threads and caches)."""

    open_registry: Callable[[], Registry]
    cache_dir: Path
    max_loaded: int = 8
    refresh_seconds: float = 0.25
    prefer_optimized: bool = False
    on_evict: Callable[[LoadedModel], None] | None = None
    on_load: Callable[[LoadedModel, float], None] | None = None  # the model, seconds it took
    checks: dict[tuple[str, str], ExampleCheck] = field(default_factory=dict)
    _registry: Registry | None = None
    _loaded: OrderedDict[Key, LoadedModel] = field(default_factory=OrderedDict)
    _loading: dict[Key, asyncio.Future[LoadedModel]] = field(default_factory=dict)
    _routes: dict[Route, int] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)
    _refresher: asyncio.Task[None] | None = None
    _down_since: float | None = None  # monotonic time the database stopped answering

    @property
    def ready(self) -> bool:
        return self._registry is not None

    @property
    def database(self) -> str | None:
        """``ok``, or ``unreachable`` since a read of the registry database failed (until one
        succeeds again)."""
        return "ok" if self._down_since is None else "unreachable"

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise NotReady("the model registry is not open yet")
        return self._registry

    async def start(self) -> None:
        # opened here, in the worker process, so no database connection crosses a fork
        self._registry = await anyio.to_thread.run_sync(self.open_registry)
        try:
            await self._refresh_names()
        except StorageError as exc:  # a worker (re)started in an outage serves what it can
            self._unreachable(exc)
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()

    def names(self) -> list[str]:
        return list(self._names)

    def versions(self, name: str) -> list[str]:
        return [str(v) for (model, v) in sorted(self._loaded) if model == name]

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    async def resolve(self, name: str, version: str | None = None) -> LoadedModel:
        name, _, alias = name.partition("@")
        if version is not None:
            if not version.isdigit():
                raise InvalidRequest(f"version must be a number, got {version!r}", version=version)
            return await self._served((name, int(version)))
        route = (name, alias)
        number = self._routes.get(route)
        if number is None:
            # known down: answer at once rather than have each request wait on a connection
            # attempt (the refresh finds out when the database is back, within a second)
            if self._down_since is not None:
                raise _no_route(name, alias)
            try:
                number = await self._lookup(route)
            except StorageError as exc:
                self._unreachable(exc)
                raise _no_route(name, alias) from exc
            self._routes[route] = number
        return await self._served((name, number))

    async def _served(self, key: Key) -> LoadedModel:
        """The loaded model; a 503 when it must be fetched and the database cannot be read."""
        bind_model(key[0], str(key[1]))  # the request's lines from here on, a failed load's too
        if self._down_since is not None and key not in self._loaded:
            raise _not_loaded(key)
        try:
            return await self._model(key)
        except StorageError as exc:
            if not type(exc.__cause__).__module__.startswith("sqlalchemy"):
                raise  # the artifact store's failure (or a blob gone): not an outage of ours
            self._unreachable(exc)
            raise _not_loaded(key) from exc

    def _unreachable(self, exc: StorageError) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "registry database unreachable (%s): serving %d routes as last read; names "
                "and aliases not served before answer 503 until it is back",
                type(exc.__cause__ or exc).__name__,
                len(self._routes),
            )

    def _reachable(self) -> None:
        if self._down_since is not None:
            log.warning(
                "registry database reachable again after %.1f s; routes refresh as before",
                time.monotonic() - self._down_since,
            )
            self._down_since = None

    async def _lookup(self, route: Route) -> int:
        name, alias = route
        ref = f"{name}@{alias}" if alias else name
        return await anyio.to_thread.run_sync(self._route_target, ref)

    def _route_target(self, ref: str) -> int:
        """In a thread: the version a name or alias serves (its ONNX copy when preferred)."""
        record = self.registry.resolve(ref)
        if self.prefer_optimized:
            copy = self.registry.optimized_copy(record.model, record.version)
            if copy is not None:
                return copy.version
        return record.version

    async def _model(self, key: Key) -> LoadedModel:
        model = self._loaded.get(key)
        if model is not None:
            self._loaded.move_to_end(key)
            return model
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            try:
                model = await anyio.to_thread.run_sync(self._load, key)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: later waiters re-raise it themselves
                raise
            finally:
                del self._loading[key]
            self._remember(key, model)
            pending.set_result(model)
            return model
        return await asyncio.shield(pending)

    def _load(self, key: Key) -> LoadedModel:
        """In a thread: the bundle from the artifact store (cached on disk), loaded and checked."""
        name, version = key
        started = time.perf_counter()
        folder = self.registry.checkout(name, version, self.cache_dir)
        try:
            model = load_version(folder)  # a code model: in a sandboxed process of its own
        except (BundleError, FlavorError) as exc:  # stored fine, but will not load here
            raise ModelLoadFailed(
                f"model {name!r} version {version} could not be loaded: {exc.message}",
                model=name,
                version=version,
            ) from exc
        self.checks[(model.name, model.version)] = check_example(model)
        log.info("loaded %s version %s", name, version, extra={"model": name, "version": version})
        if self.on_load is not None:
            self.on_load(model, time.perf_counter() - started)
        return model

    def _remember(self, key: Key, model: LoadedModel) -> None:
        self._loaded[key] = model
        self._loaded.move_to_end(key)
        routed = set(self._routes.values())
        while len(self._loaded) > self.max_loaded:
            victim = next(
                (k for k in self._loaded if k != key and k[1] not in routed),
                next(iter(self._loaded)),
            )
            evicted = self._loaded.pop(victim)
            self.checks.pop((evicted.name, evicted.version), None)
            if self.on_evict is not None:
                self.on_evict(evicted)
            log.info(
                "unloaded %s version %s (max %d loaded)",
                victim[0],
                victim[1],
                self.max_loaded,
                extra={"model": victim[0], "version": victim[1]},
            )

    async def _refresh_forever(self) -> None:
        while True:
            down = self._down_since is not None
            await asyncio.sleep(max(self.refresh_seconds, DOWN_REFRESH_SECONDS * down))
            try:
                await self._refresh_routes()
                await self._refresh_names()
            except StorageError as exc:  # keep every route as last read until it answers
                self._unreachable(exc)
                continue
            except FerryError as exc:  # e.g. a new version that will not load: keep the old
                log.info("route refresh: %s", exc.message)
            except Exception:  # a bug, not an outage: keep serving what we have
                log.exception("route refresh failed")
            self._reachable()

    async def _refresh_routes(self) -> None:
        for route, current in list(self._routes.items()):
            try:
                number = await self._lookup(route)
            except NotFound:  # the model or alias is gone: so is its route
                self._routes.pop(route, None)
                continue
            if number != current:
                try:  # load and check before switching
                    await self._model((route[0], number))
                except FerryError as exc:  # it will not load (or cannot be fetched): not yet
                    log.info("route %s stays on version %d: %s", route, current, exc.message)
                    continue
                self._routes[route] = number
                log.info("route %s now serves version %d", "@".join(filter(None, route)), number)

    async def _refresh_names(self) -> None:
        page = await anyio.to_thread.run_sync(lambda: self.registry.list_models(limit=1000))
        self._names = [model.name for model in page.items]


def _no_route(name: str, alias: str) -> DatabaseUnavailable:
    ref = f"{name}@{alias}" if alias else name
    return DatabaseUnavailable(
        f"the registry database is unreachable and this worker has not served {ref!r} "
        "before, so it cannot tell which version that names; retry shortly (versions "
        "already served keep answering)",
        model=name,
        alias=alias or None,
    )


def _not_loaded(key: Key) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"model {key[0]!r} version {key[1]} is not loaded in this worker and the registry "
        "database is unreachable; retry shortly",
        model=key[0],
        version=key[1],
    )
