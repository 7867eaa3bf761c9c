"""The security tables' database: the registry's (FERRY_DATABASE_URL or FERRY_HOME's SQLite),
opened lazily once per process, since an engine must not cross a ``fork()``."""

from __future__ import annotations

import os
import threading

from sqlalchemy.engine import Engine

from ferry.config.paths import database_url
from ferry.config.settings import Settings


class SecurityDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityDatabase:
        return cls(database_url(settings))

    @property
    def engine(self) -> Engine:
        pid = os.getpid()
        engine = self._engine
        if engine is not None and self._pid == pid:
            return engine
        with self._lock:
            if self._engine is None or self._pid != pid:
                from ferry.registry.metadata.engine import create_engine

                # a parent's engine is left alone (its pooled sockets belong to the parent)
                self._engine = create_engine(self.url)
                self._pid = pid
            return self._engine

    def migrate(self) -> None:
        from ferry.registry.migrations import upgrade_engine

        upgrade_engine(self.engine)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None
