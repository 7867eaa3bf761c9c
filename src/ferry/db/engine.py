"""SQLAlchemy engines: URL normalising, SQLite pragmas, write transactions, and
``Connections``: reads and writes with foreign errors translated, for every layer's store (the
registry's metadata, the security, monitoring and packaging tables).

Every engine hides its statements' parameters (``hide_parameters=True``) and ``describe``
gives a driver error's text without its SQL, parameters or PostgreSQL's DETAIL line (which
quotes the offending values): an error message never carries a value a caller stored
(issue 14: a 500 once echoed ``[parameters: ('customer-ssn-123',)]``).

SQLite: WAL journal (readers never wait for the writer), foreign keys on, a busy timeout, and
write transactions opened with ``BEGIN IMMEDIATE`` so concurrent writers queue up instead of
failing mid-transaction. PostgreSQL: psycopg 3, pre-ping, and row locks (``FOR UPDATE``) taken by
the store where an order matters.

Every wait has a deadline (issue 13), from ``FERRY_DB_*``: connecting to PostgreSQL
(libpq's ``connect_timeout``), each statement (``statement_timeout``, set per session), and
waiting for a pooled connection (``pool_timeout``); SQLite's busy timeout bounds its lock waits.
A timeout is a ``StorageError`` like any driver failure.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from ferry.config.settings import get_settings
from ferry.errors import ConfigError, Conflict, FerryError, StorageError, StorageUnavailable

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 60.0
_WRITE = "ferry_write"
_POSTGRES = {"postgresql", "postgres", "postgresql+psycopg"}


def normalize_url(url: str) -> URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; SQLite stays as given."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"{redact(url)!r} is not a database URL: {exc}") from exc
    if parsed.drivername in _POSTGRES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact(url: str | URL) -> str:
    """The URL without its password, for logs and messages."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def create_engine(url: str) -> Engine:
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    settings = get_settings()
    options: dict[str, Any] = {"hide_parameters": True}
    memory = False
    if backend == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in database
        options["connect_args"] = {"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
        if memory:
            options["poolclass"] = StaticPool
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            options["pool_timeout"] = settings.db_pool_timeout_seconds
    elif backend == "postgresql":
        options["pool_pre_ping"] = True
        options["pool_timeout"] = settings.db_pool_timeout_seconds
        options["connect_args"] = postgres_deadlines(
            parsed, settings.db_connect_timeout_seconds, settings.db_statement_timeout_seconds
        )
    else:
        raise ConfigError(
            f"no metadata store for {redact(parsed)!r}; use sqlite:///path or postgresql://...",
            url=redact(parsed),
        )
    try:
        engine = sa.create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:
        hint = " (pip install 'ferry-ml[postgres]')" if backend == "postgresql" else ""
        raise ConfigError(f"cannot open {redact(parsed)}: {exc}{hint}") from exc
    if backend == "sqlite":
        _configure_sqlite(engine, memory=memory)
    return engine


def postgres_deadlines(
    url: URL, connect_seconds: float, statement_seconds: float
) -> dict[str, Any]:
    """libpq's ``connect_timeout`` (whole seconds, at least 2: libpq's own floor) and a
    session ``statement_timeout`` in milliseconds (0: none), unless the URL sets its own."""
    query = url.query
    args: dict[str, Any] = {}
    if "connect_timeout" not in query:
        args["connect_timeout"] = max(2, math.ceil(connect_seconds))
    if statement_seconds > 0 and "options" not in query:
        args["options"] = f"-c statement_timeout={math.ceil(statement_seconds * 1000)}"
    return args


def _configure_sqlite(engine: Engine, *, memory: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own is too late)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()  # its busy timeout: connect_args' "timeout"
        if not memory:
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the database.

    While a new database is still in rollback mode and another process migrates it, SQLite
    answers this switch with "database is locked" at once, without waiting out the busy
    timeout (waiting could deadlock: this connection holds a shared lock the migrating one
    needs gone). Backing off and trying again lets the migration finish first.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock up front."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


def describe(exc: BaseException) -> str:
    """A database error's text that quotes no value: the driver's primary message (psycopg:
    ``diag.message_primary``, without DETAIL's ``Key (name)=(...)``; SQLite's messages name
    columns, never values), never the SQL or its parameters."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if isinstance(primary, str) and primary:
        text = primary
    elif isinstance(exc, DBAPIError) or isinstance(orig, sqlite3.Error):
        text = str(orig).split("\n", 1)[0]
    else:
        text = str(exc).split("\n", 1)[0]
    return f"{type(orig).__name__}: {text}"


def is_postgres(connection: Connection | Engine) -> bool:
    return connection.dialect.name == "postgresql"


def _unreachable(exc: DBAPIError | PoolTimeout) -> bool:
    """Past a deadline (pool, connect, statement, SQLite busy) or the server gone: not a bad
    query. SQLite raises OperationalError for bad SQL too, so only its lock errors count."""
    if isinstance(exc, PoolTimeout) or exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return "locked" in str(exc.orig) or "busy" in str(exc.orig)
    return True  # psycopg: connection failures and QueryCanceled (statement_timeout)


class Connections:
    """A store's connections to ``engine``: ``read()`` and ``write()`` (a write transaction),
    inside ``errors()``, which turns a refused write (IntegrityError) into ``Conflict`` and any
    other driver or pool failure into ``StorageError``, naming ``what`` failed (``"the
    registry database"``) and the database URL without its password."""

    def __init__(self, engine: Engine, what: str) -> None:
        self.engine = engine
        self.what = what
        self.url = redact(engine.url)

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except FerryError:
            raise
        except IntegrityError as exc:
            raise Conflict(f"{self.what} refused a conflicting write: {describe(exc)}") from exc
        except (DBAPIError, PoolTimeout) as exc:
            # the statement for the log (its parameters hidden by the engine), never the caller
            statement = getattr(exc, "statement", None)
            log.warning(
                "database error",
                extra={
                    "database": self.url,
                    "store": self.what,
                    "error": describe(exc),
                    "statement": statement,
                },
            )
            # past a deadline (connect, statement, pool, SQLite busy) or unreachable: a 503
            error = StorageUnavailable if _unreachable(exc) else StorageError
            raise error(f"{self.what} at {self.url} failed: {describe(exc)}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.errors(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.errors(), write_transaction(self.engine) as connection:
            yield connection
