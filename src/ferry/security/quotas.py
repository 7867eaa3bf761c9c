"""Per-principal quotas: requests per minute (fixed one-minute windows) and rows per day (UTC),
an API key's own limits or the ones a JWT's subject gets (``tokens.py``).

Counters are shared by every worker process: in Redis when FERRY_REDIS_URL is set, else in the
registry database (``quota_counters``, an atomic upsert per request). Requests are counted
before they are served; rows are only known after, so the observer charges them (batched by a
background thread every ``ROWS_FLUSH_SECONDS``) and the next request checks the day's total.
Only keys that have limits pay any of this.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from typing import Protocol

import sqlalchemy as sa

from ferry.config.settings import Settings
from ferry.db.events import PredictionEvent
from ferry.db.leases import quota_counters
from ferry.errors import ConfigError, RateLimited
from ferry.forks import reset_after_fork
from ferry.security.database import SecurityDatabase
from ferry.security.identity import Principal

log = logging.getLogger(__name__)

MINUTE = 60
DAY = 86_400
ROWS_FLUSH_SECONDS = 0.5
SWEEP_EVERY_SECONDS = 300.0


class Counters(Protocol):
    def add(self, name: str, amount: int, ttl: float) -> int:
        """Atomically add ``amount`` to counter ``name`` (kept ``ttl`` seconds); the new total."""

    def get(self, name: str) -> int: ...

    def close(self) -> None: ...


class SqlCounters:
    def __init__(self, database: SecurityDatabase) -> None:
        self.database = database
        self._next_sweep = time.time() + SWEEP_EVERY_SECONDS

    def add(self, name: str, amount: int, ttl: float) -> int:
        from ferry.db.engine import is_postgres, write_transaction

        now = time.time()
        with write_transaction(self.database.engine) as conn:
            if is_postgres(conn):
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            statement = insert(quota_counters).values(name=name, count=amount, expires_at=now + ttl)
            statement = statement.on_conflict_do_update(
                index_elements=[quota_counters.c.name],
                set_={"count": quota_counters.c.count + statement.excluded.count},
            )
            total = int(conn.execute(statement.returning(quota_counters.c.count)).scalar_one())
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_EVERY_SECONDS
                conn.execute(sa.delete(quota_counters).where(quota_counters.c.expires_at < now))
        return total

    def get(self, name: str) -> int:
        with self.database.engine.connect() as conn:
            query = sa.select(quota_counters.c.count).where(quota_counters.c.name == name)
            value = conn.execute(query).scalar_one_or_none()
        return int(value or 0)

    def close(self) -> None:
        """The database is closed by its owner."""


class RedisCounters:
    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "FERRY_REDIS_URL needs the redis client: pip install 'ferry-ml[redis]'"
            ) from exc
        self.url = url
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        reset_after_fork(self, "_forked")

    def _forked(self) -> None:
        import redis

        # a forked worker opens its own connections; the parent's sockets stay the parent's
        self._client = redis.Redis.from_url(
            self.url, socket_timeout=2.0, socket_connect_timeout=2.0
        )

    def add(self, name: str, amount: int, ttl: float) -> int:
        pipe = self._client.pipeline(transaction=True)
        pipe.incrby(f"ferry:quota:{name}", amount)
        pipe.expire(f"ferry:quota:{name}", math.ceil(ttl), nx=True)
        total, _ = pipe.execute()
        return int(total)

    def get(self, name: str) -> int:
        value = self._client.get(f"ferry:quota:{name}")
        return int(value) if value is not None else 0

    def close(self) -> None:
        self._client.close()


def open_counters(settings: Settings, database: SecurityDatabase) -> Counters:
    if settings.redis_url:
        return RedisCounters(settings.redis_url)
    return SqlCounters(database)


class QuotaGate:
    """Checks a limited principal before its request and charges its rows after."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self._rows: defaultdict[str, int] = defaultdict(int)  # principal id -> uncharged rows
        self._metered: set[str] = set()  # principals with a rows/day limit
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        reset_after_fork(self, "_forked")

    def check(self, principal: Principal) -> None:
        """Count one request; RateLimited (with retry_after) when over a limit. Blocking I/O:
        call off the event loop."""
        now = time.time()
        if principal.requests_per_minute is not None:
            window = int(now // MINUTE)
            used = self.counters.add(f"rpm:{principal.id}:{window}", 1, ttl=2 * MINUTE)
            if used > principal.requests_per_minute:
                retry = max(1, math.ceil((window + 1) * MINUTE - now))
                raise RateLimited(
                    f"{_who(principal)} is over its {principal.requests_per_minute} "
                    f"requests per minute; retry in {retry}s",
                    limit="requests_per_minute",
                    retry_after=retry,
                )
        if principal.rows_per_day is not None:
            with self._lock:
                self._metered.add(principal.id)
                pending = self._rows.get(principal.id, 0)
            day = int(now // DAY)
            used = self.counters.get(f"rows:{principal.id}:{day}") + pending
            if used >= principal.rows_per_day:
                retry = max(1, math.ceil((day + 1) * DAY - now))
                raise RateLimited(
                    f"{_who(principal)} used its {principal.rows_per_day} rows for today "
                    f"(UTC); retry in {retry}s",
                    limit="rows_per_day",
                    retry_after=retry,
                )

    # --- the observer half: rows are charged after the request ----------------------------
    def observe(self, event: PredictionEvent) -> None:
        principal = event.principal
        if principal is None or event.rows == 0 or principal not in self._metered:
            return
        self._ensure_thread()
        with self._lock:
            self._rows[principal] += event.rows

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
        self._flush()

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, name="ferry-quota", daemon=True)
                self._thread.start()

    def _forked(self) -> None:
        self._rows = defaultdict(int)
        self._thread = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.wait(ROWS_FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._rows = self._rows, defaultdict(int)
        day = int(time.time() // DAY)
        for principal, rows in pending.items():
            try:
                self.counters.add(f"rows:{principal}:{day}", rows, ttl=2 * DAY)
            except Exception:  # a thread boundary: keep the rows for the next try
                log.exception("cannot charge %d rows to %s", rows, principal)
                with self._lock:
                    self._rows[principal] += rows


def _who(principal: Principal) -> str:
    return f"{'token subject' if principal.kind == 'jwt' else 'key'} {principal.name!r}"
