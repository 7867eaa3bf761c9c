"""FerryState: everything one app holds, in one typed object (``ferry_state(request)``).

create_app() makes it and keeps it under the one name ``app.state.ferry``; nothing else is
stored on ``app.state``. It also starts and stops the app's parts: from the ASGI lifespan
when the server runs one, else on the first request (``LazyStart``: Starlette never runs
the lifespan of an app mounted inside another one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ferry.config.settings import Settings
from ferry.server.routes import RouteTable
from ferry.server.serving.context import ServingContext

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ferry.registry import Registry
    from ferry.server.auth import Security
    from ferry.server.monitoring import Monitoring

log = logging.getLogger(__name__)

STATE_NAME = "ferry"
MetricSource = Callable[[], Awaitable[bytes]]
Part = Callable[[], AbstractAsyncContextManager[None]]


@dataclass
class FerryState:
    settings: Settings
    serving: ServingContext
    routes: RouteTable = field(default_factory=RouteTable)  # the app's one route table
    security: Security | None = None  # auth on: /readyz names models to keys only
    monitoring: Monitoring | None = None
    registry: Callable[[], Registry] | None = None  # ferry server: the process's registry
    metric_sources: list[MetricSource] = field(default_factory=list)  # more /metrics text
    parts: list[Part] = field(default_factory=list)  # started in order, stopped in reverse
    started: bool = False
    _stack: AsyncExitStack | None = None
    _lock: asyncio.Lock | None = None

    async def start(self) -> None:
        """Start every part once (the lifespan, or the first request when mounted)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.started:
                return
            stack = AsyncExitStack()
            try:
                for part in self.parts:
                    await stack.enter_async_context(part())
            except BaseException:
                await stack.aclose()
                raise
            self._stack, self.started = stack, True

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        self.started = False
        if stack is not None:
            await stack.aclose()

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def ferry_state(of: HTTPConnection | Starlette) -> FerryState:
    """The app's state, from a request (the innermost app, when mounted) or from the app."""
    app = of.app if isinstance(of, HTTPConnection) else of
    state: FerryState = getattr(app.state, STATE_NAME)
    return state


class LazyStart:
    """Starts the app on its first request when no lifespan did (a mounted app: README
    "Embedding Ferry"); a no-op check per request otherwise."""

    def __init__(self, app: ASGIApp, state: FerryState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.state.started and scope["type"] in ("http", "websocket"):
            log.info("no lifespan ran (a mounted app?): starting on the first request")
            await self.state.start()
        await self.app(scope, receive, send)
