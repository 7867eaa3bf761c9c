"""The prediction routes, dispatched before FastAPI's router and middleware stack.

FastAPI's route matching and middleware cost ~60 µs a request, as much as a small model's
predict call. The POST routes the route table marks ``fast`` (native predict, MLflow
invocations, V2 infer) are matched here from the same table, and answered by the same
endpoint functions the router documents in /openapi.json, with the same error handling.
Everything else goes on to FastAPI.
"""

from __future__ import annotations

import logging
from typing import cast

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ferry.errors import FerryError
from ferry.server.errors import error_response, unexpected_error_response
from ferry.server.routes import FastEndpoint, RouteTable, route_path

log = logging.getLogger(__name__)


class FastPathMiddleware:
    """ASGI middleware: prediction POSTs are answered here, the rest goes to ``app``."""

    def __init__(self, app: ASGIApp, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        matched = self.routes.fast_match(route_path(scope))
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, params = matched
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await cast(FastEndpoint, route.endpoint)(request)
        except FerryError as exc:
            response = error_response(scope, exc, route.protocol)
        except Exception as exc:  # a bug, not the caller's fault: logged, answered as 500
            response = unexpected_error_response(scope, exc)
        await response(scope, receive, send)
