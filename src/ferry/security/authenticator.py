"""Credentials -> Principal, with a short in-process cache so a key is checked against the
database at most once per ``ttl`` seconds per process: revocation and expiry take effect
within ``ttl``. Failures are cached too, so a flood of one bad key costs no database load."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from ferry.config.settings import Settings
from ferry.errors import Unauthorized
from ferry.security.identity import Principal
from ferry.security.keys import PREFIX, KeyStore
from ferry.security.tokens import JwtConfig, JwtVerifier, looks_like_jwt

MAX_CACHED = 10_000

Outcome = Principal | Unauthorized


class Authenticator:
    def __init__(
        self, keys: KeyStore | None, tokens: JwtVerifier | None, *, ttl: float = 5.0
    ) -> None:
        self.keys = keys
        self.tokens = tokens
        self.ttl = ttl
        self._cache: OrderedDict[str, tuple[float, Outcome]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        config = JwtConfig.from_settings(settings)
        return cls(
            KeyStore.from_settings(settings),
            None if config is None else JwtVerifier(config),
            ttl=settings.auth_cache_seconds,
        )

    def cached(self, token: str) -> Outcome | None:
        """The remembered outcome for ``token`` (cheap, for the event loop), else None."""
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            until, outcome = entry
            if until <= now:
                del self._cache[token]
                return None
        expires = outcome.expires_at if isinstance(outcome, Principal) else None
        if expires is not None and expires <= time.time():
            return Unauthorized("credentials expired", reason="expired")
        return outcome

    def verify(self, token: str) -> Outcome:
        """Check ``token`` (may query the database or fetch a JWKS: call off the event loop)."""
        outcome: Outcome
        try:
            outcome = self._verify(token)
        except Unauthorized as exc:
            outcome = exc
        with self._lock:
            self._cache[token] = (time.monotonic() + self.ttl, outcome)
            self._cache.move_to_end(token)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return outcome

    def _verify(self, token: str) -> Principal:
        if token.startswith(PREFIX) and self.keys is not None:
            return self.keys.verify(token)
        if looks_like_jwt(token):
            if self.tokens is None:
                raise Unauthorized("this server accepts no JWTs (no FERRY_JWT_* set)", reason="jwt")
            return self.tokens.verify(token)
        raise Unauthorized("unrecognised credentials", reason="malformed")
