"""Security events in the registry's append-only ``audit_log``: key changes, every write
request and every authentication or authorization failure (who, what, when, from where).

Requests are recorded by ``AuditWriter``: the event loop only appends to a bounded queue and
a thread inserts batches, so a flood of bad credentials costs the server no database round
trip per request (past the queue's bound, events are counted and dropped, and logged).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ferry.forks import reset_after_fork
from ferry.registry.metadata.tables import audit_log
from ferry.security.database import SecurityDatabase

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
BATCH = 500
MAX_FIELD = 500


@dataclass(frozen=True, slots=True)
class AuditRecord:
    actor: str  # principal id, or "-" when no valid credentials were given
    action: str  # e.g. auth.missing, auth.invalid, auth.forbidden, http.write, key.create
    target: str  # e.g. "POST /api/v1/models/iris/versions"
    details: dict[str, object] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def insert_audit(conn: Connection, records: list[AuditRecord]) -> None:
    if not records:
        return
    conn.execute(
        sa.insert(audit_log),
        [
            {
                "at": r.at,
                "actor": r.actor[:256],
                "action": r.action[:64],
                "target": r.target[:MAX_FIELD],
                "details": r.details,
            }
            for r in records
        ],
    )


class AuditWriter:
    """Writes audit records from a background thread (started on first use in each process)."""

    def __init__(self, database: SecurityDatabase) -> None:
        self.database = database
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        reset_after_fork(self, "_forked")

    def record(self, record: AuditRecord) -> None:
        """Never blocks: the event loop calls this."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit queue full; %d events dropped", self.dropped)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout=30)
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ferry-audit", daemon=True)
            self._thread.start()

    def _forked(self) -> None:
        # a forked worker starts its own thread and queue (the parent's lock may be held)
        self._queue = queue.Queue(MAX_PENDING)
        self._thread = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        from ferry.registry.metadata.engine import write_transaction

        stop = False
        while not stop:
            first = self._queue.get()
            batch: list[AuditRecord] = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            if not batch:
                continue
            try:
                with write_transaction(self.database.engine) as conn:
                    insert_audit(conn, batch)
            except Exception:  # a thread boundary: log, keep serving
                log.exception("cannot write %d audit events", len(batch))
