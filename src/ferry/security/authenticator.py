"""Credentials -> Principal, with a short in-process cache so a key is checked against the
database at most once per ``ttl`` seconds per process: revocation and expiry take effect
within ``ttl`` (FERRY_AUTH_CACHE_SECONDS, 0.5 s by default, at most 1 s). Failures are cached
too, so a flood of one bad key costs no database load.

Both caches are bounded in bytes, not entries, and keyed by the SHA-256 of the credentials,
never the credentials themselves: 2,000 requests with a 1 MB ``X-API-Key`` once grew each
worker by 1.0 GB through the old 10,000-entry cache of raw tokens. Credentials longer than
``MAX_CREDENTIAL_CHARS`` are refused before any work and never cached.

While the database is unreachable, a key this process verified within the last
``OUTAGE_GRACE_SECONDS`` is still let in with what it was then (its scopes, its expiry):
without that, every keyed prediction answered 503 from half a second into an outage, while
the same models answered 200 to anonymous callers of public routes. Only successes are kept
for this (hashed, bounded in bytes); a key the database refuses is forgotten at once, and
nothing can be revoked while the database is down. The one gap, said plainly: a key revoked
elsewhere and not used here since may be let in here during an outage that starts within
the grace window.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from ferry.config.settings import Settings
from ferry.errors import DatabaseUnavailable, StorageUnavailable, Unauthorized
from ferry.security.identity import Principal
from ferry.security.keys import PREFIX, KeyStore
from ferry.security.tokens import JwtConfig, JwtVerifier, looks_like_jwt

# A Ferry key is 64 characters (149 at most); a provider's JWT 1-2 KiB, rarely past 4 KiB
# with many groups. 8 KiB leaves room for those and is half the default header limit.
MAX_CREDENTIAL_CHARS = 8 * 1024
# per cache (successes, failures), per process: about 10,000 failures of ~400 bytes each
MAX_CACHE_BYTES = 4 * 1024 * 1024
ENTRY_OVERHEAD = 200  # digest bytes object, tuple, float, OrderedDict slot (measured ~190)
# how old a key's last successful check may be to let it in while the database is down
OUTAGE_GRACE_SECONDS = 3600.0

log = logging.getLogger(__name__)

Outcome = Principal | Unauthorized


def oversized(token: str) -> Unauthorized | None:
    """The refusal of credentials too long to be real, else None (cheap: a length)."""
    if len(token) <= MAX_CREDENTIAL_CHARS:
        return None
    return Unauthorized(
        f"credentials of {len(token)} characters are over the limit of {MAX_CREDENTIAL_CHARS}",
        reason="oversized",
    )


def _outcome_bytes(outcome: Outcome) -> int:
    if isinstance(outcome, Unauthorized):
        return sys.getsizeof(outcome.message) + 64 * len(outcome.details)
    return sys.getsizeof(outcome.name) + sys.getsizeof(outcome.id) + 64 * len(outcome.scopes)


@dataclass(frozen=True, slots=True)
class _Entry:
    until: float
    outcome: Outcome
    size: int


class ByteBoundedCache:
    """Outcomes by credential digest, oldest out once their sizes pass ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> Outcome | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.until <= now:
            self.drop(digest)
            return None
        return entry.outcome

    def put(self, digest: bytes, outcome: Outcome, until: float) -> None:
        self.drop(digest)
        size = ENTRY_OVERHEAD + len(digest) + _outcome_bytes(outcome)
        if size > self.max_bytes:
            return
        self._entries[digest] = _Entry(until, outcome, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.size

    def drop(self, digest: bytes) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            self.bytes -= entry.size


def _unexpired(outcome: Outcome) -> Outcome:
    expires = outcome.expires_at if isinstance(outcome, Principal) else None
    if expires is not None and expires <= time.time():
        return Unauthorized("credentials expired", reason="expired")
    return outcome


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class Authenticator:
    def __init__(
        self,
        keys: KeyStore | None,
        tokens: JwtVerifier | None,
        *,
        ttl: float = 0.5,
        max_cache_bytes: int = MAX_CACHE_BYTES,
    ) -> None:
        self.keys = keys
        self.tokens = tokens
        self.ttl = ttl
        # separate budgets: a flood of bad credentials cannot evict the good ones
        self.successes = ByteBoundedCache(max_cache_bytes)
        self.failures = ByteBoundedCache(max_cache_bytes)
        # keys' last successful checks, for a database outage only (see the module's doc)
        self.last_good = ByteBoundedCache(max_cache_bytes)
        self.outage_grace = OUTAGE_GRACE_SECONDS
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
        """The remembered outcome for ``token`` (cheap, for the event loop), else None.
        Oversized credentials are refused here, before hashing."""
        refused = oversized(token)
        if refused is not None:
            return refused
        digest = digest_of(token)
        now = time.monotonic()
        with self._lock:
            outcome = self.successes.get(digest, now) or self.failures.get(digest, now)
        return None if outcome is None else _unexpired(outcome)

    def verify(self, token: str) -> Outcome:
        """Check ``token`` (may query the database or fetch a JWKS: call off the event loop).
        Raises ``StorageUnavailable`` if the database is down and the key is not remembered."""
        refused = oversized(token)
        if refused is not None:
            return refused  # never verified, never cached
        digest = digest_of(token)
        outcome: Outcome
        try:
            outcome = self._verify(token)
        except Unauthorized as exc:
            outcome = exc
        except (StorageUnavailable, DatabaseUnavailable):
            with self._lock:
                remembered = self.last_good.get(digest, time.monotonic())
            if not isinstance(remembered, Principal):  # only successes are kept there
                raise
            log.warning("the key store is unreachable: key %s let in as last seen", remembered.id)
            return _unexpired(remembered)
        now = time.monotonic()
        with self._lock:
            if isinstance(outcome, Principal):
                self.successes.put(digest, outcome, now + self.ttl)
                if outcome.kind == "key":
                    self.last_good.put(digest, outcome, now + self.outage_grace)
            else:
                self.failures.put(digest, outcome, now + self.ttl)
                self.last_good.drop(digest)
        return outcome

    def _verify(self, token: str) -> Principal:
        if token.startswith(PREFIX) and self.keys is not None:
            return self.keys.verify(token)
        if looks_like_jwt(token):
            if self.tokens is None:
                raise Unauthorized("this server accepts no JWTs (no FERRY_JWT_* set)", reason="jwt")
            return self.tokens.verify(token)
        raise Unauthorized("unrecognised credentials", reason="malformed")
