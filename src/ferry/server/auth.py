"""The authentication layer: an outer ASGI middleware in front of every route, the
prediction fast path included. It is installed only when auth is on, so a server without
auth pays nothing per request.

Per request: the scope the route needs (``access.AccessPolicy``), the caller's key or JWT
(``Authorization: Bearer`` or ``X-API-Key``; checked once per 0.5 s per process, see
``Authenticator``; credentials over 8 KiB are refused unread), the scope check, the caller's
quotas, then the app with the principal in ``scope["ferry.principal"]`` for metering. Failures
answer 401 (with ``WWW-Authenticate``), 403 or 429 (with ``Retry-After``) in the route's
protocol's error shape, are counted in ``ferry_auth_refused_total{reason}`` and audited
aggregated (one row per minute, key id and client: ``AuditWriter.refused``); every write is
audited one row each. Headers over FERRY_MAX_HEADER_BYTES never get here (``headers.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.config.settings import Settings
from ferry.db.events import PredictionEvent
from ferry.errors import FerryError, Forbidden, NotReady, RateLimited, Unauthorized
from ferry.ids import ANONYMOUS
from ferry.monitoring.metrics import ServingMetrics
from ferry.security.audit import AuditRecord, AuditWriter, Refusal
from ferry.security.authenticator import Authenticator, Outcome
from ferry.security.database import SecurityDatabase
from ferry.security.identity import PRINCIPAL_SCOPE_KEY, Principal
from ferry.security.keys import key_id_of
from ferry.security.metering import UsageMeter
from ferry.security.public import PublicModels
from ferry.security.quotas import QuotaGate, open_counters
from ferry.security.scopes import Action, Requirement
from ferry.server.access import AccessPolicy, is_write
from ferry.server.errors import error_response
from ferry.server.headers import keep_header_limit_outermost
from ferry.server.routes import RouteTable, route_path

log = logging.getLogger(__name__)

REALM = 'Bearer realm="ferry"'
# public routes that say more to a caller with a key holding ``read``: which models are loaded
DETAIL_PATHS = frozenset({"/readyz"})
READ_ALL = Requirement((Action.READ,))


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
    metrics: ServingMetrics | None = None  # the app's, once installed

    @classmethod
    def from_settings(
        cls, settings: Settings, routes: RouteTable, *, single_model: str | None = None
    ) -> Security:
        """The security of an app with ``routes`` (their access is the policy)."""
        database = SecurityDatabase.from_settings(settings)
        return cls(
            database=database,
            authenticator=Authenticator.from_settings(settings),
            quotas=QuotaGate(open_counters(settings, database)),
            meter=UsageMeter(database, flush_seconds=settings.usage_flush_seconds),
            audit=AuditWriter(database),
            public=PublicModels(database),
            policy=AccessPolicy(routes, settings.public_metrics, single_model),
        )

    def install(self, app: FastAPI, metrics: ServingMetrics) -> None:
        """Add the auth middleware in front of every other one but the header limit (call
        after every other ``add_middleware``; create_app() does)."""
        self.metrics = metrics
        app.add_middleware(AuthMiddleware, security=self)
        keep_header_limit_outermost(app)

    def count_refusal(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.auth_refused.labels(reason).inc()

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
        path = route_path(scope)
        need = self.security.policy.requirement(method, path)
        if need is None:
            if path in DETAIL_PATHS:
                await self._identify(scope)
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
        try:
            outcome = await self._check(token)
        except Exception as exc:  # the key store is down: refuse, retryably, never let in
            await self._unavailable(scope, receive, send, "check credentials", exc)
            return
        if isinstance(outcome, Unauthorized):
            await self._deny(scope, receive, send, outcome, None, key_id_of(token))
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
        scope[PRINCIPAL_SCOPE_KEY] = principal
        if is_write(method) and Action.PREDICT not in need.actions:  # predictions aren't writes
            await self._audited(scope, receive, send, principal)
        else:
            await self.app(scope, receive, send)

    async def _check(self, token: str) -> Outcome:
        """The cached outcome (oversized credentials are refused there, unread), else a
        verification off the event loop."""
        outcome = self.security.authenticator.cached(token)
        if outcome is None:
            outcome = await anyio.to_thread.run_sync(self.security.authenticator.verify, token)
        return outcome

    async def _identify(self, scope: Scope) -> None:
        """On a public route with detail: the principal, if the caller sent a valid key with
        ``read`` (anything else is no detail, never a refusal: probes send no key)."""
        token = credentials(scope)
        if token is None:
            return
        try:
            outcome = await self._check(token)
        except Exception:  # the key store is down: the probe still answers, without detail
            log.warning("cannot check credentials for %s", scope["path"], exc_info=True)
            return
        if isinstance(outcome, Principal) and outcome.may(READ_ALL):
            scope[PRINCIPAL_SCOPE_KEY] = outcome

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No route speaks WebSocket today; one that does gets the GET rules, never a bypass."""
        need = self.security.policy.requirement("GET", route_path(scope))
        token = credentials(scope)
        if need is not None:
            outcome: Principal | Unauthorized | None = None
            if token is not None:
                outcome = await self._check(token)
            if not isinstance(outcome, Principal) or not outcome.may(need):
                await send({"type": "websocket.close", "code": 1008})  # policy violation
                return
            scope[PRINCIPAL_SCOPE_KEY] = outcome
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
        response = error_response(scope, error)
        response.headers["Retry-After"] = "1"
        await response(scope, receive, send)

    async def _deny(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        error: FerryError,
        principal: Principal | None,
        key_id: str | None = None,
    ) -> None:
        response = error_response(scope, error)
        reason = str(error.details.get("reason", error.code))
        if isinstance(error, Unauthorized):
            invalid = reason != "missing"
            response.headers["WWW-Authenticate"] = (
                f'{REALM}, error="invalid_token"' if invalid else REALM
            )
        self.security.count_refusal(reason)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.details.get("retry_after", 60))
        else:  # quota answers would flood the log; auth failures are what an audit is for
            actor = principal.id if principal is not None else key_id or ANONYMOUS
            self.security.audit.refused(
                Refusal(
                    actor,
                    f"auth.{error.code}",
                    host_of(scope),
                    f"{scope['method']} {scope['path']}",
                    reason,
                    response.status_code,
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


def host_of(scope: Scope) -> str:
    """The client's address without its port (one client opens many connections)."""
    client = scope.get("client")
    return str(client[0]) if client else "-"


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


__all__ = ["AuthMiddleware", "Requirement", "Security", "credentials"]
