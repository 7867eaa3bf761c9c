"""The credential caches: keyed by digest, bounded in bytes, oversized credentials refused
unread and never cached, failures unable to evict successes."""

from __future__ import annotations

import pytest

from ferry.errors import StorageUnavailable, Unauthorized
from ferry.security.authenticator import (
    MAX_CREDENTIAL_CHARS,
    Authenticator,
    ByteBoundedCache,
    digest_of,
)
from ferry.security.database import SecurityDatabase
from ferry.security.identity import Principal
from ferry.security.keys import KeyStore
from tests.registry_fixtures import free_port

SECRET = b"0123456789abcdef0123456789abcdef-test"


@pytest.fixture
def store(security_db: SecurityDatabase) -> KeyStore:
    return KeyStore(security_db, SECRET)


def test_oversized_credentials_are_refused_unread_and_never_cached(store: KeyStore) -> None:
    auth = Authenticator(store, None, ttl=60)
    huge = "fry_0123456789abcdef_" + "x" * (1024 * 1024)
    for outcome in (auth.cached(huge), auth.verify(huge)):
        assert isinstance(outcome, Unauthorized)
        assert outcome.details["reason"] == "oversized"
    assert len(auth.failures) == len(auth.successes) == 0
    assert auth.failures.bytes == 0
    at_limit = "fry_0123456789abcdef_" + "x" * (MAX_CREDENTIAL_CHARS - 21)
    assert isinstance(auth.verify(at_limit), Unauthorized)
    assert len(auth.failures) == 1  # a merely bad key is remembered (a flood costs no queries)


def test_the_failure_cache_is_bounded_in_bytes(store: KeyStore) -> None:
    auth = Authenticator(store, None, ttl=60, max_cache_bytes=64 * 1024)
    good = store.create("ci", ["read"]).token
    assert isinstance(auth.verify(good), Principal)
    for i in range(2_000):
        auth.verify(f"fry_{i:016x}_" + "y" * (MAX_CREDENTIAL_CHARS - 21))
    assert auth.failures.bytes <= 64 * 1024
    assert 0 < len(auth.failures) < 2_000
    assert isinstance(auth.cached(good), Principal)  # a flood of failures evicts no success


def test_the_cache_holds_digests_not_credentials() -> None:
    cache = ByteBoundedCache(10_000)
    token = "fry_0123456789abcdef_" + "z" * 43
    cache.put(digest_of(token), Unauthorized("invalid API key", reason="invalid"), until=1e12)
    [key] = cache._entries  # noqa: SLF001 - what the cache keeps is the point
    assert key == digest_of(token)
    assert len(key) == 32
    assert cache.get(digest_of(token), now=0.0) is not None
    assert cache.get(digest_of(token), now=2e12) is None  # expired entries go
    assert cache.bytes == 0


def test_a_database_outage_lets_in_only_keys_verified_before_it(store: KeyStore) -> None:
    """While the key store is unreachable, keys this process verified within the grace window
    are let in as they were then; keys it never verified, keys the database refused, and keys
    checked too long ago raise ``StorageUnavailable`` (a retryable 503)."""
    auth = Authenticator(store, None, ttl=0.0)
    good, spare, gone = (store.create(n, ["predict:*"]).token for n in ("app", "spare", "gone"))
    assert isinstance(auth.verify(good), Principal)
    assert isinstance(auth.verify(gone), Principal)
    store.revoke("gone")
    assert isinstance(auth.verify(gone), Unauthorized)  # refused: forgotten for outages too
    assert len(auth.last_good) == 1
    live, dead = store.database, SecurityDatabase(f"postgresql://x@127.0.0.1:{free_port()}/down")
    try:
        store.database = dead
        let_in = auth.verify(good)
        assert isinstance(let_in, Principal)
        assert let_in.name == "app"
        for token in (spare, gone):
            with pytest.raises(StorageUnavailable):
                auth.verify(token)
        store.database, auth.outage_grace = live, 0.0
        assert isinstance(auth.verify(good), Principal)
        store.database = dead
        with pytest.raises(StorageUnavailable):  # its last check is past the grace window
            auth.verify(good)
    finally:
        dead.close()
        store.database = live
