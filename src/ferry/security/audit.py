"""Security events in the registry's append-only ``audit_log``: key changes, every write
request and authentication or authorization failures (who, what, when, from where).

Requests are recorded by ``AuditWriter``: the event loop only appends to a bounded queue and
a thread inserts batches, so a flood of bad credentials costs the server no database round
trip per request (past the queue's bound, events are counted and dropped, and logged).

Refused requests (401, 403) are aggregated, not written one row each (31,753 rows once came
from unauthenticated traffic alone): one row per minute, action, key id (or ``-``) and client
address, whose ``details.count`` says how many, written when the minute is over (or at
shutdown). Past ``MAX_TALLIES`` distinct groups in a minute the rest share one overflow row.
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
from ferry.registry.tables import audit_log
from ferry.security.database import SecurityDatabase

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
BATCH = 500
MAX_FIELD = 500
WINDOW_SECONDS = 60
MAX_TALLIES = 10_000  # distinct (action, actor, client) groups per window, per process
MAX_KINDS = 8  # distinct reasons, statuses and targets kept in one row's details
FLUSH_POLL_SECONDS = 1.0
OVERFLOW = "*"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    actor: str  # principal id, or ids.ANONYMOUS without valid credentials
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


@dataclass(frozen=True, slots=True)
class Refusal:
    actor: str  # the key id the credentials named, the principal, or ids.ANONYMOUS
    action: str  # auth.unauthorized | auth.forbidden
    client: str  # the client address, no port (a flood opens many connections)
    target: str  # "POST /v1/models/iris/predict"
    reason: str
    status: int


def _bump(counts: dict[str, int], key: str) -> None:
    if key in counts or len(counts) < MAX_KINDS:
        counts[key] = counts.get(key, 0) + 1
    else:
        counts["other"] = counts.get("other", 0) + 1


@dataclass(slots=True)
class _Tally:
    first: datetime
    count: int = 0
    targets: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


class RefusalTally:
    """Counts of refused requests per (window, action, actor, client); thread-safe."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS) -> None:
        self.window = window_seconds
        self._lock = threading.Lock()
        self._tallies: dict[tuple[int, str, str, str], _Tally] = {}

    def add(self, refusal: Refusal, at: datetime | None = None) -> None:
        at = at or datetime.now(UTC)
        window = int(at.timestamp() // self.window)
        key = (window, refusal.action, refusal.actor, refusal.client)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                if len(self._tallies) >= MAX_TALLIES:
                    key = (window, refusal.action, OVERFLOW, OVERFLOW)
                    tally = self._tallies.get(key)
                if tally is None:
                    tally = self._tallies[key] = _Tally(at)
            tally.count += 1
            _bump(tally.targets, refusal.target[:MAX_FIELD])
            _bump(tally.reasons, refusal.reason[:64])
            _bump(tally.statuses, str(refusal.status))

    def drain(self, now: datetime | None = None, *, everything: bool = False) -> list[AuditRecord]:
        """Rows for the windows that are over (every window with ``everything``)."""
        current = int((now or datetime.now(UTC)).timestamp() // self.window)
        with self._lock:
            done = [k for k in self._tallies if everything or k[0] < current]
            tallies = [(k, self._tallies.pop(k)) for k in done]
        records = []
        for (window, action, actor, client), tally in tallies:
            target = max(tally.targets, key=tally.targets.__getitem__)
            records.append(
                AuditRecord(
                    actor,
                    action,
                    target,
                    {
                        "count": tally.count,
                        "client": client,
                        "window_start": datetime.fromtimestamp(
                            window * self.window, UTC
                        ).isoformat(),
                        "window_seconds": self.window,
                        "targets": tally.targets,
                        "reasons": tally.reasons,
                        "statuses": tally.statuses,
                    },
                    at=tally.first,
                )
            )
        return records


_NOTHING = AuditRecord("-", "-", "-")  # the queue's timeout: only the refusal tallies to flush


class AuditWriter:
    """Writes audit records from a background thread (started on first use in each process)."""

    def __init__(
        self, database: SecurityDatabase, *, window_seconds: float = WINDOW_SECONDS
    ) -> None:
        self.database = database
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.refusals = RefusalTally(window_seconds)
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

    def refused(self, refusal: Refusal) -> None:
        """Count a refused request into this minute's row for its key id and client."""
        self._ensure_thread()
        self.refusals.add(refusal)

    def close(self) -> None:
        """Write what is queued (and every refusal counted so far) and stop the thread."""
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
        self.refusals = RefusalTally(self.refusals.window)

    def _run(self) -> None:
        from ferry.db.engine import write_transaction

        stop = False
        while not stop:
            batch: list[AuditRecord] = []
            try:
                first = self._queue.get(timeout=FLUSH_POLL_SECONDS)
            except queue.Empty:
                first = _NOTHING
            if first is None:
                stop = True
            elif first is not _NOTHING:
                batch.append(first)
            while not stop and len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            batch.extend(self.refusals.drain(everything=stop))
            if not batch:
                continue
            try:
                with write_transaction(self.database.engine) as conn:
                    insert_audit(conn, batch)
            except Exception:  # a thread boundary: log, keep serving
                log.exception("cannot write %d audit events", len(batch))
