"""The prediction routes, dispatched before FastAPI's router and middleware stack.

FastAPI's route matching and middleware cost ~60 µs a request, as much as a small model's
predict call. The POST routes that carry predictions are matched here by splitting the
path, and answered by the same endpoint functions the router documents in /openapi.json,
with the same error handling. Everything else goes on to FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ferry.errors import FerryError
from ferry.server.errors import error_response, unexpected_error_response

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
Params = dict[str, str]


class PredictionRoutes:
    """The endpoints the fast path serves, by protocol."""

    def __init__(self, native: Endpoint, mlflow: Endpoint, mlflow_named: Endpoint, v2: Endpoint):
        self.native = native
        self.mlflow = mlflow
        self.mlflow_named = mlflow_named
        self.v2 = v2

    def match(self, path: str) -> tuple[Endpoint, Params] | None:
        if path == "/invocations":
            return self.mlflow, {}
        parts = path.split("/")
        # ['', 'v1', 'models', name, 'predict'] or [..., name, 'versions', v, 'predict']
        size = len(parts)
        if size not in (4, 5, 7) or parts[0] != "":
            return None
        head, last = parts[1], parts[-1]
        if head == "mlflow" and size == 4 and last == "invocations" and parts[2]:
            return self.mlflow_named, {"name": parts[2]}
        if parts[2] != "models" or not parts[3]:
            return None
        endpoint = self.native if (head, last) == ("v1", "predict") else None
        if endpoint is None and (head, last) == ("v2", "infer"):
            endpoint = self.v2
        if endpoint is None:
            return None
        if size == 5:
            return endpoint, {"name": parts[3]}
        if size == 7 and parts[4] == "versions" and parts[5]:
            return endpoint, {"name": parts[3], "version": parts[5]}
        return None


class FastPathMiddleware:
    """ASGI middleware: prediction POSTs are answered here, the rest goes to ``app``."""

    def __init__(self, app: ASGIApp, routes: PredictionRoutes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        matched = self.routes.match(scope["path"])
        if matched is None:
            await self.app(scope, receive, send)
            return
        endpoint, params = matched
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except FerryError as exc:
            response = error_response(scope["path"], exc)
        except Exception as exc:  # a bug, not the caller's fault: logged, answered as 500
            response = unexpected_error_response(scope["path"], exc, scope.get("app"))
        await response(scope, receive, send)
