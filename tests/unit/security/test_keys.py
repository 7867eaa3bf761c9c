"""API keys against a real database: shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ferry.config.settings import Settings
from ferry.durations import parse_duration
from ferry.errors import InvalidRequest, NotFound, Unauthorized
from ferry.security.authenticator import Authenticator
from ferry.security.database import SecurityDatabase
from ferry.security.keys import KeyStore, server_secret
from ferry.security.scopes import Action, Requirement

SECRET = b"0123456789abcdef0123456789abcdef-test"


def test_create_verify_and_what_is_stored(security_db: SecurityDatabase) -> None:
    store = KeyStore(security_db, SECRET)
    new = store.create("ci", ["predict:iris", "publish:*"], requests_per_minute=10)
    assert new.token.startswith(f"fry_{new.record.id}_")
    principal = store.verify(new.token)
    assert (principal.id, principal.name, principal.kind) == (new.record.id, "ci", "key")
    assert principal.may(Requirement((Action.PREDICT,), "iris"))
    assert not principal.may(Requirement((Action.PREDICT,), "wine"))
    assert principal.requests_per_minute == 10
    with security_db.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_keys")).mappings().one()
        audit = conn.execute(sa.text("SELECT action, target FROM audit_log")).all()
    secret_part = new.token.removeprefix(f"fry_{new.record.id}_")
    assert len(secret_part) >= 40
    assert secret_part not in str(dict(row)), "the key's secret must never be stored"
    assert len(row["secret_hash"]) == 64
    assert [tuple(a) for a in audit] == [("key.create", f"key {new.record.id}")]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "fry_nothex_xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "fry_0123456789abcdef_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # unknown id
    ],
)
def test_unknown_or_malformed_keys(security_db: SecurityDatabase, token: str) -> None:
    with pytest.raises(Unauthorized):
        KeyStore(security_db, SECRET).verify(token)


def test_wrong_secret_or_other_server_secret(security_db: SecurityDatabase) -> None:
    new = KeyStore(security_db, SECRET).create("ci", ["read"])
    tampered = new.token[:-4] + ("AAAA" if not new.token.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized, match="invalid"):
        KeyStore(security_db, SECRET).verify(tampered)
    with pytest.raises(Unauthorized, match="invalid"):  # a leaked database alone is not enough
        KeyStore(security_db, b"another-server-secret-of-32-bytes!!").verify(new.token)


def test_revoke_and_expire(security_db: SecurityDatabase) -> None:
    store = KeyStore(security_db, SECRET)
    keep = store.create("keep", ["read"])
    gone = store.create("ci", ["read"])
    short = store.create("short", ["read"], expires_in=timedelta(seconds=1))
    assert [r.id for r in store.revoke("ci")] == [gone.record.id]
    with pytest.raises(Unauthorized, match="revoked"):
        store.verify(gone.token)
    store.verify(keep.token)
    time.sleep(1.2)
    with pytest.raises(Unauthorized, match="expired"):
        store.verify(short.token)
    statuses = {r.name: r.status() for r in store.all()}
    assert statuses == {"keep": "active", "ci": "revoked", "short": "expired"}
    assert [r.name for r in store.all(include_revoked=False)] == ["keep", "short"]
    with pytest.raises(NotFound):
        store.revoke("ci")  # already revoked


def test_authenticator_caches_then_sees_revocation(security_db: SecurityDatabase) -> None:
    store = KeyStore(security_db, SECRET)
    new = store.create("ci", ["read"])
    auth = Authenticator(store, None, ttl=0.5)
    assert auth.cached(new.token) is None
    assert auth.verify(new.token).name == "ci"  # type: ignore[union-attr]
    store.revoke(new.record.id)
    assert auth.cached(new.token).name == "ci"  # type: ignore[union-attr]
    time.sleep(0.6)
    assert auth.cached(new.token) is None
    assert isinstance(auth.verify(new.token), Unauthorized)


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0d", "1y", "soon", "-3d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_duration(text)


def test_bad_names_and_limits(security_db: SecurityDatabase) -> None:
    store = KeyStore(security_db, SECRET)
    with pytest.raises(InvalidRequest, match="name"):
        store.create("no spaces", ["read"])
    with pytest.raises(InvalidRequest, match="requests_per_minute"):
        store.create("ci", ["read"], requests_per_minute=0)
    with pytest.raises(InvalidRequest, match="scope"):
        store.create("ci", ["write"])
    assert store.all() == []


def test_server_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = server_secret(settings)
    assert server_secret(settings) == first
    mode = os.stat(tmp_path / "home" / "auth.secret").st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert server_secret(Settings(home=tmp_path, auth_secret="x" * 40)) == b"x" * 40


class CountingStore(KeyStore):
    """The real store, counting the HMACs it computes (the expensive, secret-dependent step)."""

    hashes = 0

    def _hash(self, salt: str, secret: str) -> str:
        self.hashes += 1
        return super()._hash(salt, secret)


def test_unknown_and_known_key_ids_cost_the_same_work(security_db: SecurityDatabase) -> None:
    """A known id once answered 60-70 us slower than an unknown one (the HMAC and the row were
    skipped for unknown ids): both now run one query for salt and hash, one HMAC and one
    constant-time compare (bench/auth_key_timing.py measures it)."""
    store = CountingStore(security_db, SECRET)
    real = store.create("ci", ["read"])
    store.hashes = 0
    queries: list[str] = []
    sa.event.listen(security_db.engine, "before_cursor_execute", _record_query(queries))
    for token in (f"fry_{real.record.id}_{'x' * 43}", f"fry_0123456789abcdef_{'x' * 43}"):
        before = (store.hashes, len(queries))
        with pytest.raises(Unauthorized) as refused:
            store.verify(token)
        assert refused.value.message == "invalid API key"
        assert (store.hashes - before[0], len(queries) - before[1]) == (1, 1), token
    assert queries[0] == queries[1]  # the same statement, whether the id exists or not


def _record_query(into: list[str]) -> object:
    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not a new connection's PRAGMAs
            into.append(statement)

    return record
