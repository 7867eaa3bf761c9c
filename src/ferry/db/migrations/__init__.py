"""Alembic migrations for Ferry's database (every layer's tables), run from code (no alembic.ini).

They lived in ``ferry/registry/migrations`` until issue 14; the revision ids are unchanged, so
a database stamped by an older Ferry upgrades in place.

``upgrade(url)`` brings a database to the newest schema and is safe to run again, and from
several processes at once (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ferry.errors import FerryError, StorageError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

HEAD = "0005_predlog_chunks"
SCRIPT_LOCATION = Path(__file__).resolve().parent
_LOCK_ID = 0x46455252  # "FERR": the advisory lock that serialises concurrent upgrades


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` up to ``revision``; returns the revision it is at."""
    from ferry.db.engine import create_engine

    engine = create_engine(url)
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> str:
    """``upgrade`` on an engine the caller owns (an in-memory SQLite database, say)."""
    from alembic import command
    from sqlalchemy.exc import DBAPIError

    from ferry.db.engine import describe, is_postgres, redact, write_transaction

    try:
        with write_transaction(engine) as connection:
            if is_postgres(connection):
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
            command.upgrade(_config(connection), revision)
            now = _current(connection) or "base"
    except FerryError:
        raise
    except DBAPIError as exc:
        raise StorageError(f"cannot migrate {redact(engine.url)}: {describe(exc)}") from exc
    log.info("database migrated", extra={"database": redact(engine.url), "revision": now})
    return now


def current_revision(url: str) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from ferry.db.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return _current(connection)
    finally:
        engine.dispose()


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


__all__ = ["HEAD", "SCRIPT_LOCATION", "current_revision", "upgrade", "upgrade_engine"]
