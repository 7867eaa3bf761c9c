"""Every registered version, loaded on first use in this worker process (``ferry server``).

A request names ``iris`` (the ``production`` alias when set, else the latest version),
``iris@staging`` or ``iris`` + version 3. Names resolve to version numbers through a route
table that a background task refreshes every ``refresh_seconds``: when an alias moves, the
new version is loaded and checked first, then the route swaps, so traffic switches within a
second and no request waits for (or fails during) the load. At most ``max_loaded`` versions
stay in memory, least recently used first out.
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

from ferry.errors import (
    BundleError,
    FerryError,
    FlavorError,
    InvalidRequest,
    ModelLoadFailed,
    NotReady,
)
from ferry.model.loaded import LoadedModel
from ferry.server.serving.isolated import load_version
from ferry.server.serving.repository import ExampleCheck, check_example

if TYPE_CHECKING:
    from ferry.registry import Registry

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (model, version)
Route = tuple[str, str]  # (model, alias or "" for the default route)


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

    @property
    def ready(self) -> bool:
        return self._registry is not None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise NotReady("the model registry is not open yet")
        return self._registry

    async def start(self) -> None:
        # opened here, in the worker process, so no database connection crosses a fork
        self._registry = await anyio.to_thread.run_sync(self.open_registry)
        await self._refresh_names()
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
            return await self._model((name, int(version)))
        route = (name, alias)
        number = self._routes.get(route)
        if number is None:
            number = await self._lookup(route)
            self._routes[route] = number
        return await self._model((name, number))

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
        log.info("loaded %s version %s", name, version)
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
                "unloaded %s version %s (max %d loaded)", victim[0], victim[1], self.max_loaded
            )

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self._refresh_routes()
                await self._refresh_names()
            except FerryError as exc:  # a model or alias deleted meanwhile: drop its route
                log.info("route refresh: %s", exc.message)
            except Exception:  # the store is unreachable for a moment: keep serving what we have
                log.exception("route refresh failed")

    async def _refresh_routes(self) -> None:
        for route, current in list(self._routes.items()):
            try:
                number = await self._lookup(route)
            except FerryError:
                self._routes.pop(route, None)
                continue
            if number != current:
                await self._model((route[0], number))  # load and check before switching
                self._routes[route] = number
                log.info("route %s now serves version %d", "@".join(filter(None, route)), number)

    async def _refresh_names(self) -> None:
        page = await anyio.to_thread.run_sync(lambda: self.registry.list_models(limit=1000))
        self._names = [model.name for model in page.items]
