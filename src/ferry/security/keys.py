"""API keys: ``fry_<id>_<secret>``, shown once, stored as a salted HMAC-SHA256 of the secret.

The secret is 256 random bits, so a fast keyed hash is as strong as a slow one while costing
microseconds per check; the HMAC key (``FERRY_AUTH_SECRET``, else ``auth.secret`` in
FERRY_HOME, made on first use) means a leaked database alone cannot confirm a guessed key.
Several servers sharing one PostgreSQL database must share ``FERRY_AUTH_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ferry.config.settings import Settings
from ferry.errors import ConfigError, InvalidRequest, NotFound, Unauthorized
from ferry.security.audit import AuditRecord, insert_audit
from ferry.security.database import SecurityDatabase
from ferry.security.identity import Principal
from ferry.security.scopes import Scope, parse_scopes
from ferry.security.tables import api_keys

PREFIX = "fry_"
SECRET_FILE = "auth.secret"  # noqa: S105 - a file name, not a password
_TOKEN = re.compile(r"^fry_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
_KEY_ID = re.compile(r"^fry_([0-9a-f]{16})_")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# what an unknown key id is checked against: shaped like a stored salt and hash, matching no
# secret (no HMAC output is all zeros in practice)
DUMMY_SALT = "0" * 16
DUMMY_HASH = "0" * 64


class KeyNotFound(NotFound):
    code = "key_not_found"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    requests_per_minute: int | None
    rows_per_day: int | None

    def status(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "name": self.name,
            "scopes": [str(s) for s in self.scopes],
            "status": self.status(),
            "created_at": when(self.created_at),
            "created_by": self.created_by,
            "expires_at": when(self.expires_at),
            "revoked_at": when(self.revoked_at),
            "requests_per_minute": self.requests_per_minute,
            "rows_per_day": self.rows_per_day,
        }


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    token: str  # the only time the full key exists outside the caller's hands


def server_secret(settings: Settings) -> bytes:
    """``FERRY_AUTH_SECRET``, else the home's ``auth.secret`` (created 0600 on first use)."""
    if settings.auth_secret:
        return settings.auth_secret.encode()
    path = settings.home.expanduser() / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ConfigError(f"{path} holds too short a secret; delete it to make a new one")
    return secret


def _create_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")


def key_id_of(token: str) -> str | None:
    """The key id credentials name (not proof of anything: for grouping refusals)."""
    match = _KEY_ID.match(token)
    return None if match is None else match.group(1)


def check_key_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(
            f"key name {name!r}: use 1-128 letters, digits, '.', '_' or '-'", field="name"
        )
    return name


class KeyStore:
    def __init__(self, database: SecurityDatabase, secret: bytes) -> None:
        self.database = database
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        return cls(SecurityDatabase.from_settings(settings), server_secret(settings))

    def _hash(self, salt: str, secret: str) -> str:
        return hmac.new(self._secret, f"{salt}:{secret}".encode(), hashlib.sha256).hexdigest()

    def create(
        self,
        name: str,
        scopes: list[str] | tuple[str, ...],
        *,
        expires_in: timedelta | None = None,
        requests_per_minute: int | None = None,
        rows_per_day: int | None = None,
        actor: str = "local",
    ) -> NewKey:
        from ferry.db.engine import write_transaction

        check_key_name(name)
        parsed = parse_scopes(scopes)
        for field, limit in (
            ("requests_per_minute", requests_per_minute),
            ("rows_per_day", rows_per_day),
        ):
            if limit is not None and limit < 1:
                raise InvalidRequest(f"{field} must be 1 or more, got {limit}", field=field)
        key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(8)
        now = datetime.now(UTC)
        record = KeyRecord(
            id=key_id,
            name=name,
            scopes=parsed,
            created_at=now,
            created_by=actor,
            expires_at=None if expires_in is None else now + expires_in,
            revoked_at=None,
            requests_per_minute=requests_per_minute,
            rows_per_day=rows_per_day,
        )
        with write_transaction(self.database.engine) as conn:
            conn.execute(
                sa.insert(api_keys).values(
                    id=key_id,
                    name=name,
                    salt=salt,
                    secret_hash=self._hash(salt, secret),
                    scopes=[str(s) for s in parsed],
                    created_at=now,
                    created_by=actor,
                    expires_at=record.expires_at,
                    revoked_at=None,
                    requests_per_minute=requests_per_minute,
                    rows_per_day=rows_per_day,
                )
            )
            details = record.to_json()
            insert_audit(conn, [AuditRecord(actor, "key.create", f"key {key_id}", details)])
        return NewKey(record, f"{PREFIX}{key_id}_{secret}")

    def all(self, *, include_revoked: bool = True) -> list[KeyRecord]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.database.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def find(self, id_or_name: str) -> list[KeyRecord]:
        """The key with this id, else the keys with this name (oldest first)."""
        query = sa.select(api_keys).where(
            sa.or_(api_keys.c.id == id_or_name, api_keys.c.name == id_or_name)
        )
        with self.database.engine.connect() as conn:
            rows = [_record(row) for row in conn.execute(query)]
        by_id = [r for r in rows if r.id == id_or_name]
        return by_id or sorted(rows, key=lambda r: r.created_at)

    def revoke(self, id_or_name: str, *, actor: str = "local") -> list[KeyRecord]:
        """Revoke the key with this id, or every active key with this name."""
        from ferry.db.engine import write_transaction

        targets = [r for r in self.find(id_or_name) if r.revoked_at is None]
        if not targets:
            raise KeyNotFound(f"no active key with id or name {id_or_name!r}", key=id_or_name)
        now = datetime.now(UTC)
        with write_transaction(self.database.engine) as conn:
            ids = [r.id for r in targets]
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id.in_(ids), api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            insert_audit(
                conn, [AuditRecord(actor, "key.revoke", f"key {i}", {"id": i}) for i in ids]
            )
        return [r for r in self.find(id_or_name) if r.id in ids]

    def verify(self, token: str) -> Principal:
        """The principal ``token`` stands for; Unauthorized if it is unknown, expired or revoked."""
        match = _TOKEN.match(token)
        if match is None:
            raise Unauthorized("malformed API key", reason="malformed")
        key_id, secret = match.groups()
        # The same work whether the id exists or not (a known id once answered 60-70 us
        # slower, which told an attacker which ids exist): one query for the salt and hash
        # only, one HMAC and one constant-time compare, against a dummy when the id is
        # unknown; the full row is read only once the secret has matched.
        with self.database.reads("the key store") as conn:  # down: StorageUnavailable
            check = sa.select(api_keys.c.salt, api_keys.c.secret_hash).where(
                api_keys.c.id == key_id
            )
            found = conn.execute(check).first()
            salt, expected = (DUMMY_SALT, DUMMY_HASH) if found is None else tuple(found)
            matched = hmac.compare_digest(expected, self._hash(salt, secret))
            row = None
            if matched and found is not None:
                row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise Unauthorized("invalid API key", reason="invalid")
        record = _record(row)
        status = record.status()
        if status != "active":
            raise Unauthorized(f"API key {record.id} is {status}", reason=status)
        return Principal(
            id=record.id,
            name=record.name,
            kind="key",
            scopes=record.scopes,
            expires_at=None if record.expires_at is None else record.expires_at.timestamp(),
            requests_per_minute=record.requests_per_minute,
            rows_per_day=record.rows_per_day,
        )

    def count_active(self) -> int:
        with self.database.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(api_keys.c.revoked_at.is_(None))
            return int(conn.execute(query.select_from(api_keys)).scalar_one())


def _record(row: sa.Row[Any]) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        scopes=tuple(Scope.parse(s) for s in row.scopes),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        requests_per_minute=row.requests_per_minute,
        rows_per_day=row.rows_per_day,
    )
