"""Request headers over ``FERRY_MAX_HEADER_BYTES`` answer 431 before any other work.

uvicorn's httptools parser accepts headers of any size (8 MB ones were), so the limit is
checked here, on the parsed ``scope["headers"]``, in the outermost middleware: before auth
(which would otherwise read, verify and cache a 1 MB ``X-API-Key``), before the route. The
bytes were already read by then; what this bounds is everything the server keeps or does with
them. 16 KiB by default: uvicorn's h11 parser and Node.js refuse past 16 KiB too, nginx past
8 KiB per line, and a real request (a bearer JWT of 1-2 KiB, cookies, tracing) is far smaller.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ferry.errors import HeadersTooLarge
from ferry.monitoring.metrics import ServingMetrics
from ferry.server.errors import error_response


def header_bytes(scope: Scope) -> int:
    """Names and values of every header, as the client sent them (minus separators)."""
    return sum(len(name) + len(value) for name, value in scope["headers"])


class HeaderLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServingMetrics | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            size = header_bytes(scope)
            if size > self.max_bytes:
                error = HeadersTooLarge(
                    f"request headers are {size} bytes, over this server's limit of "
                    f"{self.max_bytes} (FERRY_MAX_HEADER_BYTES)",
                    limit=self.max_bytes,
                )
                if self.metrics is not None:
                    self.metrics.errors.labels(error.code).inc()
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1009})  # message too big
                    return
                response = error_response(scope, error)
                response.headers["Connection"] = "close"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_limit(middleware: Middleware) -> bool:
    cls: object = middleware.cls
    return cls is HeaderLimit


def install_header_limit(app: FastAPI, max_bytes: int, metrics: ServingMetrics | None) -> None:
    """``HeaderLimit`` in front of every middleware ``app`` has so far."""
    app.user_middleware.insert(0, Middleware(HeaderLimit, max_bytes=max_bytes, metrics=metrics))


def keep_header_limit_outermost(app: FastAPI) -> None:
    """Move ``HeaderLimit`` back in front after another middleware was added (the auth layer:
    the limit must see a request before auth does)."""
    limits = [m for m in app.user_middleware if _is_limit(m)]
    others = [m for m in app.user_middleware if not _is_limit(m)]
    app.user_middleware[:] = [*limits, *others]
