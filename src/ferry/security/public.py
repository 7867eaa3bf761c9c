"""Models whose predict endpoints are open without a key: those tagged ``public=true`` in the
registry (``ferry`` model tags). A thread re-reads the set every few seconds, so the request
path only looks a name up in a frozenset."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import sqlalchemy as sa

from ferry.forks import reset_after_fork
from ferry.registry.tables import model_tags, models
from ferry.security.database import SecurityDatabase

log = logging.getLogger(__name__)

PUBLIC_TAG = "public"
TRUE = ("true", "1", "yes")
REFRESH_SECONDS = 2.0


def is_public(tags: Mapping[str, str]) -> bool:
    """Whether a model with these tags answers predictions without a key."""
    return tags.get(PUBLIC_TAG, "").lower() in TRUE


class PublicModels:
    def __init__(self, database: SecurityDatabase, refresh_seconds: float = REFRESH_SECONDS):
        self.database = database
        self.refresh_seconds = refresh_seconds
        self.names: frozenset[str] = frozenset()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        reset_after_fork(self, "_forked")

    def __contains__(self, model: str) -> bool:
        if self._thread is None:
            self._start()
        return model in self.names

    def refresh(self) -> None:
        query = (
            sa.select(models.c.name)
            .select_from(models.join(model_tags, model_tags.c.model_id == models.c.id))
            .where(model_tags.c.key == PUBLIC_TAG, sa.func.lower(model_tags.c.value).in_(TRUE))
        )
        with self.database.engine.connect() as conn:
            self.names = frozenset(conn.execute(query).scalars())

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="ferry-public", daemon=True)
            self._thread.start()

    def _forked(self) -> None:
        self._thread = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # a thread boundary: keep the last known set
                log.exception("cannot read which models are public")
            if self._stop.wait(self.refresh_seconds):
                return
