"""One layer's database: an engine opened lazily once per process (an engine must not cross
a ``fork()``), from a URL or from settings (FERRY_DATABASE_URL or FERRY_HOME's SQLite).

Each layer that keeps tables (security, monitoring, packaging) opens its own ``Database``;
none reaches another layer's engine. They may all point at the same database file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from sqlalchemy.engine import Connection, Engine

from ferry.config.paths import database_url
from ferry.config.settings import Settings
from ferry.forks import reset_after_fork


class Database:
    what = "the database"  # names the tables in error messages

    def __init__(self, url: str, what: str | None = None) -> None:
        self.url = url
        if what is not None:
            self.what = what
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        reset_after_fork(self, "_forked")

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(database_url(settings))

    @property
    def engine(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                from ferry.db.engine import create_engine

                self._engine = create_engine(self.url)
            return self._engine

    @contextmanager
    def reads(self, what: str | None = None) -> Iterator[Connection]:
        """A connection whose driver failures are Ferry's: ``StorageUnavailable`` (a 503) when
        the database is down or past its deadline, ``StorageError`` otherwise."""
        from ferry.db.engine import Connections

        with Connections(self.engine, what or self.what).read() as connection:
            yield connection

    @contextmanager
    def writes(self, what: str | None = None) -> Iterator[Connection]:
        """A write transaction, its failures translated as ``reads``' are."""
        from ferry.db.engine import Connections

        with Connections(self.engine, what or self.what).write() as connection:
            yield connection

    def _forked(self) -> None:
        # the parent's engine is dropped, not disposed: its pooled sockets are the parent's
        self._engine = None
        self._lock = threading.Lock()

    def migrate(self) -> None:
        from ferry.db.migrations import upgrade_engine

        upgrade_engine(self.engine)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
