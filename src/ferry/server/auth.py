"""The authentication layer: an outer ASGI middleware in front of every route, the
prediction fast path included. It is installed only when auth is on, so a server without
auth pays nothing per request.

Per request: the scope the route needs (``access.AccessPolicy``), the caller's key or JWT
(``Authorization: Bearer`` or ``X-API-Key``; checked once per few seconds per process, see
``Authenticator``), the scope check, the caller's quotas, then the app with the principal in
``scope["ferry.principal"]`` for metering. Failures answer 401 (with ``WWW-Authenticate``), 403
or 429 (with ``Retry-After``) in the route's protocol's error shape, and are audited, as is
every write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.config.settings import Settings
from ferry.errors import FerryError, Forbidden, NotReady, RateLimited, Unauthorized
from ferry.monitoring.events import PRINCIPAL_SCOPE_KEY, PredictionEvent
from ferry.security.audit import AuditRecord, AuditWriter
from ferry.security.authenticator import Authenticator
from ferry.security.database import SecurityDatabase
from ferry.security.identity import ANONYMOUS, IDENTITY_SCOPE_KEY, Principal
from ferry.security.metering import UsageMeter
from ferry.security.public import PublicModels
from ferry.security.quotas import QuotaGate, open_counters
from ferry.security.scopes import Action, Requirement
from ferry.server.access import AccessPolicy, is_write
from ferry.server.errors import error_response

log = logging.getLogger(__name__)

REALM = 'Bearer realm="ferry"'


@dataclass
class Security:
    """Everything the auth layer uses; also the app's prediction observer (metering, rows
    charged to quotas) so the server's shutdown flushes and closes it all."""

    database: SecurityDatabase
    authenticator: Authenticator
    quotas: QuotaGate
    meter: UsageMeter
    audit: AuditWriter
    public: PublicModels
    policy: AccessPolicy

    @classmethod
    def from_settings(cls, settings: Settings, *, single_model: str | None = None) -> Security:
        database = SecurityDatabase.from_settings(settings)
        return cls(
            database=database,
            authenticator=Authenticator.from_settings(settings),
            quotas=QuotaGate(open_counters(settings, database)),
            meter=UsageMeter(database, flush_seconds=settings.usage_flush_seconds),
            audit=AuditWriter(database),
            public=PublicModels(database),
            policy=AccessPolicy(settings.public_metrics, single_model),
        )

    def install(self, app: FastAPI) -> None:
        """Add the auth middleware outermost (call after every other ``add_middleware``)."""
        app.add_middleware(AuthMiddleware, security=self)

    def observe(self, event: PredictionEvent) -> None:
        self.meter.observe(event)
        self.quotas.observe(event)

    def close(self) -> None:
        self.meter.close()
        self.quotas.close()
        self.quotas.counters.close()
        self.public.close()
        self.audit.close()
        self.database.close()


class AuthMiddleware:
    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        need = self.security.policy.requirement(method, path)
        if need is None:
            await self.app(scope, receive, send)
            return
        public = (
            Action.PREDICT in need.actions
            and need.model is not None
            and need.model in self.security.public
        )
        token = credentials(scope)
        if token is None:
            if public:
                await self.app(scope, receive, send)
                return
            missing = Unauthorized(
                "this server needs an API key: send 'Authorization: Bearer <key>' or "
                "'X-API-Key: <key>'",
                reason="missing",
            )
            await self._deny(scope, receive, send, missing, None)
            return
        outcome = self.security.authenticator.cached(token)
        if outcome is None:
            try:
                outcome = await anyio.to_thread.run_sync(self.security.authenticator.verify, token)
            except Exception as exc:  # the key store is down: refuse, retryably, never let in
                await self._unavailable(scope, receive, send, "check credentials", exc)
                return
        if isinstance(outcome, Unauthorized):
            await self._deny(scope, receive, send, outcome, None)
            return
        principal = outcome
        if not public and not principal.may(need):
            forbidden = Forbidden(
                f"{principal.kind} {principal.name!r} lacks the scope {need} for {method} {path}",
                required=str(need),
                scopes=[str(s) for s in principal.scopes],
            )
            await self._deny(scope, receive, send, forbidden, principal)
            return
        if principal.limited:
            try:
                await anyio.to_thread.run_sync(self.security.quotas.check, principal)
            except RateLimited as exc:
                await self._deny(scope, receive, send, exc, principal)
                return
            except Exception as exc:  # counters unreachable: quotas fail closed
                await self._unavailable(scope, receive, send, "count the key's quota", exc)
                return
        scope[PRINCIPAL_SCOPE_KEY] = principal.id
        scope[IDENTITY_SCOPE_KEY] = principal
        if is_write(method) and Action.PREDICT not in need.actions:  # predictions aren't writes
            await self._audited(scope, receive, send, principal)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No route speaks WebSocket today; one that does gets the GET rules, never a bypass."""
        need = self.security.policy.requirement("GET", scope["path"])
        token = credentials(scope)
        if need is not None:
            outcome: Principal | Unauthorized | None = None
            if token is not None:
                outcome = self.security.authenticator.cached(token)
                if outcome is None:
                    verify = self.security.authenticator.verify
                    outcome = await anyio.to_thread.run_sync(verify, token)
            if not isinstance(outcome, Principal) or not outcome.may(need):
                await send({"type": "websocket.close", "code": 1008})  # policy violation
                return
            scope[PRINCIPAL_SCOPE_KEY] = outcome.id
        await self.app(scope, receive, send)

    async def _audited(
        self, scope: Scope, receive: Receive, send: Send, principal: Principal
    ) -> None:
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.security.audit.record(
                AuditRecord(
                    principal.id,
                    "http.write",
                    f"{scope['method']} {scope['path']}",
                    {"client": client_of(scope), "status": status, "name": principal.name},
                )
            )

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, what: str, exc: Exception
    ) -> None:
        log.error("cannot %s for %s", what, scope["path"], exc_info=exc)
        error = NotReady(f"cannot {what} right now ({type(exc).__name__}); retry shortly")
        response = error_response(scope["path"], error)
        response.headers["Retry-After"] = "1"
        await response(scope, receive, send)

    async def _deny(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        error: FerryError,
        principal: Principal | None,
    ) -> None:
        path = scope["path"]
        response = error_response(path, error)
        if isinstance(error, Unauthorized):
            invalid = error.details.get("reason") != "missing"
            response.headers["WWW-Authenticate"] = (
                f'{REALM}, error="invalid_token"' if invalid else REALM
            )
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.details.get("retry_after", 60))
        else:  # quota answers would flood the log; auth failures are what an audit is for
            self.security.audit.record(
                AuditRecord(
                    principal.id if principal is not None else ANONYMOUS,
                    f"auth.{error.code}",
                    f"{scope['method']} {path}",
                    {
                        "client": client_of(scope),
                        "status": response.status_code,
                        "reason": error.message,
                    },
                )
            )
        await response(scope, receive, send)


def credentials(scope: Scope) -> str | None:
    """The key or token from ``Authorization: Bearer`` or ``X-API-Key``."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


__all__ = ["AuthMiddleware", "Requirement", "Security", "credentials"]
