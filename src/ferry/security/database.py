"""The security tables' database: the registry's (FERRY_DATABASE_URL or FERRY_HOME's SQLite),
opened lazily once per process, since an engine must not cross a ``fork()``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

from ferry.config.paths import database_url
from ferry.config.settings import Settings
from ferry.forks import reset_after_fork


class SecurityDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        reset_after_fork(self, "_forked")

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityDatabase:
        return cls(database_url(settings))

    @property
    def engine(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                from ferry.registry.metadata.engine import create_engine

                self._engine = create_engine(self.url)
            return self._engine

    @contextmanager
    def reads(self, what: str = "the security tables") -> Iterator[Connection]:
        """A connection whose driver failures are Ferry's: ``StorageUnavailable`` (a 503) when
        the database is down or past its deadline, ``StorageError`` otherwise."""
        from ferry.registry.metadata.engine import Connections

        with Connections(self.engine, what).read() as connection:
            yield connection

    def _forked(self) -> None:
        # the parent's engine is dropped, not disposed: its pooled sockets are the parent's
        self._engine = None
        self._lock = threading.Lock()

    def migrate(self) -> None:
        from ferry.registry.migrations import upgrade_engine

        upgrade_engine(self.engine)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
