"""Usage metering for billing: requests, rows, errors and compute time per principal, model,
version and UTC day, in the ``usage`` table.

``UsageMeter`` is a prediction observer: ``observe`` adds to in-memory totals under a lock
(no I/O on the event loop) and a background thread adds them to the table every
``FERRY_USAGE_FLUSH_SECONDS`` and once more on close (the server's shutdown), in one
transaction per flush, so the stored totals are exact once a server has stopped.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa

from ferry.db.events import PredictionEvent
from ferry.forks import reset_after_fork
from ferry.ids import ANONYMOUS
from ferry.security.database import SecurityDatabase
from ferry.security.tables import usage

log = logging.getLogger(__name__)

UsageKey = tuple[str, str, str, str]  # day, principal, model, version


@dataclass(slots=True)
class Totals:
    requests: int = 0
    rows: int = 0
    errors: int = 0
    compute_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    principal: str
    key_name: str | None  # the API key's name, when the principal is a key
    model: str
    version: str
    requests: int
    rows: int
    errors: int
    compute_ms: float


def day_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).date().isoformat()


class UsageMeter:
    def __init__(self, database: SecurityDatabase, *, flush_seconds: float = 2.0) -> None:
        self.database = database
        self.flush_seconds = flush_seconds
        self._totals: defaultdict[UsageKey, Totals] = defaultdict(Totals)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        reset_after_fork(self, "_forked")

    def observe(self, event: PredictionEvent) -> None:
        if self._thread is None:
            self._start()
        key = (day_of(event.timestamp), event.principal or ANONYMOUS, event.model, event.version)
        with self._lock:
            totals = self._totals[key]
            totals.requests += 1
            totals.rows += event.rows
            totals.errors += event.status >= 400
            totals.compute_ms += event.seconds * 1000.0

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._totals = self._totals, defaultdict(Totals)
        if not pending:
            return
        try:
            _add(self.database, pending)
        except Exception:  # a thread boundary: keep the counts for the next flush
            log.exception("cannot store usage for %d keys; will retry", len(pending))
            with self._lock:
                for key, totals in pending.items():
                    mine = self._totals[key]
                    mine.requests += totals.requests
                    mine.rows += totals.rows
                    mine.errors += totals.errors
                    mine.compute_ms += totals.compute_ms

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="ferry-usage", daemon=True)
            self._thread.start()

    def _forked(self) -> None:
        self._totals = defaultdict(Totals)  # what the parent counted is the parent's to store
        self._thread = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()


def _add(database: SecurityDatabase, pending: dict[UsageKey, Totals]) -> None:
    from ferry.db.engine import is_postgres, write_transaction

    values = [
        {
            "day": day,
            "principal": principal[:256],
            "model": model[:128],
            "version": version[:64],
            "requests": t.requests,
            "rows": t.rows,
            "errors": t.errors,
            "compute_ms": t.compute_ms,
        }
        for (day, principal, model, version), t in sorted(pending.items())
    ]
    with write_transaction(database.engine) as conn:
        if is_postgres(conn):
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        statement = insert(usage)
        statement = statement.on_conflict_do_update(
            index_elements=[usage.c.day, usage.c.principal, usage.c.model, usage.c.version],
            set_={
                name: usage.c[name] + statement.excluded[name]
                for name in ("requests", "rows", "errors", "compute_ms")
            },
        )
        conn.execute(statement, values)


def read_usage(
    database: SecurityDatabase,
    *,
    since: date | None = None,
    until: date | None = None,
    principals: list[str] | None = None,
    model: str | None = None,
) -> list[UsageRow]:
    """Stored usage rows, oldest day first; ``principals`` limits to those ids."""
    from ferry.security.tables import api_keys

    query = (
        sa.select(usage, api_keys.c.name.label("key_name"))
        .select_from(usage.outerjoin(api_keys, api_keys.c.id == usage.c.principal))
        .order_by(usage.c.day, usage.c.principal, usage.c.model, usage.c.version)
    )
    if since is not None:
        query = query.where(usage.c.day >= since.isoformat())
    if until is not None:
        query = query.where(usage.c.day <= until.isoformat())
    if principals is not None:
        query = query.where(usage.c.principal.in_(principals))
    if model is not None:
        query = query.where(usage.c.model == model)
    with database.engine.connect() as conn:
        return [
            UsageRow(
                day=row.day,
                principal=row.principal,
                key_name=row.key_name,
                model=row.model,
                version=row.version,
                requests=int(row.requests),
                rows=int(row.rows),
                errors=int(row.errors),
                compute_ms=float(row.compute_ms),
            )
            for row in conn.execute(query)
        ]


CSV_COLUMNS = (
    "day",
    "principal",
    "key_name",
    "model",
    "version",
    "requests",
    "rows",
    "errors",
    "compute_ms",
)


def usage_csv(rows: list[UsageRow]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [row.key_name or "" if c == "key_name" else getattr(row, c) for c in CSV_COLUMNS]
        )
    return out.getvalue()


def usage_json(row: UsageRow) -> dict[str, object]:
    return {c: getattr(row, c) for c in CSV_COLUMNS}


def parse_day(text: str, field: str) -> date:
    from ferry.errors import InvalidRequest

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{field}: {text!r} is not a date like 2026-11-01", field=field
        ) from None
