"""The one FerryError -> HTTP status table, and the error bodies of each protocol family."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from ferry.config.logging import bind_model, model_var, request_id_var
from ferry.errors import (
    BundleError,
    Conflict,
    FeatureNotConfigured,
    FerryError,
    FlavorError,
    Forbidden,
    HeadersTooLarge,
    InvalidInput,
    InvalidRequest,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    StorageUnavailable,
    TooManyConnections,
    Unauthorized,
    UnsafeModel,
    UnsupportedMediaType,
)
from ferry.server.routes import Protocol, route_path
from ferry.server.state import STATE_NAME, FerryState

log = logging.getLogger(__name__)

_STATUS: dict[type[FerryError], int] = {
    PayloadTooLarge: 413,
    HeadersTooLarge: 431,  # RFC 6585
    UnsupportedMediaType: 415,
    InvalidRequest: 400,
    InvalidInput: 422,
    NotFound: 404,
    NotReady: 503,
    Conflict: 409,
    # an uploaded model the inspector could not load, or a bundle that fails its checks
    BundleError: 422,
    FlavorError: 422,
    UnsafeModel: 422,  # a pickle the scanner refuses
    # telemetry key, sandbox tool, image builder: the server is not set up for it (retrying
    # cannot help), details.setting names what to set
    FeatureNotConfigured: 409,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    StorageUnavailable: 503,  # a frozen or unreachable S3 or database, past its deadline
    RequestTimeout: 408,  # a client too slow with its headers or body (server/connections.py)
    TooManyConnections: 503,  # a worker at its connection cap
}
_HTTP_CODES: dict[int, str] = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_MLFLOW_CODES: dict[int, str] = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


def scope_protocol(scope: Scope) -> Protocol:
    """The protocol of the request's path in its app's route table (Ferry's own outside an
    app: a connection refused before one runs)."""
    state = getattr(getattr(scope.get("app"), "state", None), STATE_NAME, None)
    if not isinstance(state, FerryState):
        return Protocol.NATIVE
    return state.routes.protocol_of(route_path(scope))


def status_of(exc: FerryError, protocol: Protocol = Protocol.NATIVE) -> int:
    """The HTTP status for ``exc`` on a route of ``protocol``: the one table, plus the
    protocols' own rule."""
    status = next((_STATUS[c] for c in type(exc).__mro__ if c in _STATUS), 500)
    if status == 422 and protocol in (Protocol.V2, Protocol.MLFLOW):
        return 400  # MLflow and Triton answer 400 for input that does not fit the model
    return status


def error_body(
    protocol: Protocol, status: int, code: str, message: str, details: dict[str, object]
) -> bytes:
    """The error body in the shape the route's protocol clients decode."""
    if protocol is Protocol.V2:
        return orjson.dumps({"error": message})
    if protocol is Protocol.MLFLOW:
        mlflow_code = _MLFLOW_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
        return orjson.dumps({"error_code": mlflow_code, "message": message, "ferry_code": code})
    body = {"error": {"code": code, "message": message, "details": details}}
    try:
        return orjson.dumps(body, default=str)
    except TypeError:  # a detail orjson cannot write (an int past 64 bits): the caller's value
        import json

        return json.dumps(body, default=str).encode()


# the one message a caller gets for each 5xx code: fixed text, never the exception's own
# (which may quote SQL, parameter values, paths or a model's internals); the log has that
_SERVER_MESSAGES: dict[str, str] = {
    "internal": "internal error",
    "prediction_failed": "the model failed to predict",
    "model_load_failed": "the model failed to load",
    "model_crashed": (
        "the model's process stopped while predicting; it starts again on the next request"
    ),
    "not_ready": "not ready yet; retry later",
    "database_unavailable": "the database is unavailable; retry later",
    "storage_error": "the server's storage failed",
    "storage_unavailable": "the server's storage did not answer in time; retry later",
    "too_many_connections": "the server is at its connection limit; retry later",
    "builder_unavailable": "this server cannot build images (no docker, podman or buildah)",
    "sandbox_unavailable": "this server cannot run uploaded code (no bubblewrap sandbox)",
}


def server_error_message(code: str, request_id: str, public: str | None = None) -> str:
    """The fixed public text of a 5xx with ``code`` (or the error class's ``public`` text),
    naming the request id to find the log."""
    text = _SERVER_MESSAGES.get(code) or public or "internal error"
    return f"{text}; the server's log has the cause under request id {request_id}"


def error_response(scope: Scope, exc: FerryError, protocol: Protocol | None = None) -> Response:
    """``exc`` answered on ``scope``'s route (in ``protocol``'s shape, when the caller knows
    it already: the fast path)."""
    protocol = protocol or scope_protocol(scope)
    path = scope["path"]
    status = status_of(exc, protocol)
    details = {**exc.details}
    message = exc.message
    if status >= 500:  # fixed text and the request id out; the exception's own text to the log
        request_id = request_id_var.get()
        log.error(
            "%s (%d) on %s: %s",
            exc.code,
            status,
            path,
            exc.message,
            exc_info=exc if exc.__cause__ is not None or status == 500 else None,
            extra={"error_code": exc.code, "status": status},
        )
        details = {"request_id": request_id}
        message = server_error_message(exc.code, request_id, exc.public)
    body = error_body(protocol, status, exc.code, message, details)
    return Response(body, status_code=status, media_type="application/json")


async def ferry_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FerryError)
    name = request.path_params.get("name")
    if name is not None and model_var.get() == "-":  # a route on a model: its error line too
        bind_model(str(name), str(request.path_params.get("version", "-")))
    return error_response(request.scope, exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405/... (unknown route, wrong method) in our shapes."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.detail else code
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    body = error_body(
        scope_protocol(request.scope), exc.status_code, code, message, {"path": request.url.path}
    )
    return Response(
        body, status_code=exc.status_code, media_type="application/json", headers=exc.headers
    )


def unexpected_error_response(scope: Scope, exc: Exception) -> Response:
    """Last resort for bugs: a 500 in the route's shape, with the request id to find the log;
    counted in ``ferry_errors{code="internal"}`` of ``app``'s metrics (these were missing
    from /metrics: only errors raised on purpose were counted, by the prediction routes)."""
    request_id = request_id_var.get()
    path = scope["path"]
    if isinstance(exc, ClientDisconnect):  # the client left: nobody reads this answer
        return client_gone_response(path)
    log.error("unhandled error on %s: %s", path, exc, exc_info=exc)
    state = getattr(getattr(scope.get("app"), "state", None), STATE_NAME, None)
    if isinstance(state, FerryState):
        state.serving.metrics.errors.labels("internal").inc()
    message = server_error_message("internal", request_id)
    details: dict[str, object] = {"request_id": request_id}
    body = error_body(scope_protocol(scope), 500, "internal", message, details)
    return Response(body, status_code=500, media_type="application/json")


def client_gone_response(path: str) -> Response:
    """The client closed the connection before its request was read (or was closed for
    being too slow): not a server fault, so no traceback (at ERROR with one, 45,000 such
    connections wrote 51.5 MB of log). 499 is nginx's "client closed request"."""
    log.debug("client disconnected before its request was read on %s", path)
    return Response(status_code=499)


async def client_gone_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientDisconnect)
    return client_gone_response(request.url.path)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    return unexpected_error_response(request.scope, exc)
