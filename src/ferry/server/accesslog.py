"""The access log: one ``ferry.access`` line per request (method, path, status, duration,
request id, model, version), a sample of the successful ones (``FERRY_ACCESS_LOG_SAMPLE``,
0..1) and every error (status >= 400). Pure ASGI: no task of its own, so what the app binds
(request id, model) is seen here after it answers. Never the body, the query string or a
header: credentials and payloads stay out of the log. Every answer carries the
``x-request-id`` its lines are logged under (error answers had none to quote)."""

from __future__ import annotations

import logging
import random
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.config.logging import model_var, request_id_var, version_var
from ferry.ids import time_ordered_id

log = logging.getLogger("ferry.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, sample: float = 1.0) -> None:
        self.app = app
        self.sample = min(max(sample, 0.0), 1.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tokens = (
            request_id_var.set(time_ordered_id()),  # the prediction routes set their own
            model_var.set("-"),
            version_var.set("-"),
        )
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers
        answered_id: str | None = None

        async def send_status(message: Message) -> None:
            nonlocal status, answered_id
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                for key, value in headers:
                    if key.lower() == b"x-request-id":
                        answered_id = value.decode("latin-1")
                if answered_id is None:  # every answer names the id its log lines carry
                    answered_id = request_id_var.get()
                    headers.append((b"x-request-id", answered_id.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            sampled = self.sample > 0 and random.random() < self.sample  # noqa: S311
            if status >= 400 or sampled:
                if answered_id is not None:
                    request_id_var.set(answered_id)
                if model_var.get() == "-":
                    _bind_from_path(scope)
                self._line(scope, status, time.perf_counter() - start)
            request_id_var.reset(tokens[0])
            model_var.reset(tokens[1])
            version_var.reset(tokens[2])

    @staticmethod
    def _line(scope: Scope, status: int, seconds: float) -> None:
        method, path = scope.get("method", "-"), scope.get("path", "-")
        level = logging.ERROR if status >= 500 else logging.INFO
        log.log(
            level,
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            seconds * 1000,
            extra={"method": method, "path": path, "status": status, "duration_ms": seconds * 1000},
        )


def _bind_from_path(scope: Scope) -> None:
    """The model (and version) the route's path named, for a request that served none:
    a registry call (``/api/v1/models/{name}/versions``), an unknown model's 404. The router
    leaves its ``path_params`` in the scope; a model name is ``{name}`` in every route."""
    params = scope.get("path_params") or {}
    name = params.get("name")
    if isinstance(name, str) and name:
        model_var.set(name)
        version = params.get("version")
        if version is not None:
            version_var.set(str(version))
