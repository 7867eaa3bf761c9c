"""The prediction log as an observer: ``observe`` appends the request's event to a bounded
queue; a thread in each worker process encodes what gathered and stores it, as one chunk per
model version, every ``flush_seconds`` (or sooner, once the queue is half full).

The request's thread does nothing else: on one core serving 1-row iris requests (140 us of
CPU each), encoding each request as it was answered cost that thread 11-18 us more a request
(the encoding's 3 us measured in a loop, three times that among the serving code's own
work), and the writer 4 us; encoding a second's requests in the writer's loop costs the
request's thread 5-7 us and the writer 7 us. The queue is a deque checked against its bound
(appending is atomic under the GIL and wakes nobody); when the writer falls behind, new
requests are dropped and counted (``ferry_predlog_dropped_total``) rather than slowing answers
down. The thread starts on the first event in each process, and a forked worker forgets its
parent's, so a server that forks workers after building the app gets one writer per worker.

While the database refuses writes (stopped, unreachable, its disk full) the writer keeps what
it gathers in a backlog (``backlog.py``: spool files, or memory when their folder fails too),
at most ``buffer_rows`` requests and ``buffer_bytes``, and tries the oldest part again each
flush; once one is stored, the rest follow, oldest first, before new requests. What does not
fit is dropped and counted, as is a write the database refuses for good (bad data).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ferry.db.events import PredictionEvent
from ferry.errors import ConfigError, DatabaseUnavailable
from ferry.forks import reset_after_fork
from ferry.monitoring.predlog.backlog import Backlog
from ferry.monitoring.predlog.codec import Entry, event_entry

if TYPE_CHECKING:
    from ferry.monitoring.predlog.store import PredictionStore

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 10_000
# a second's requests a write: fewer, larger chunks cost the serving core less; a queue half
# full wakes the writer sooner, so a fast server does not fill it between flushes
FLUSH_SECONDS = 1.0
BATCH_ROWS = 5000  # entries a write takes from the queue (chunks.py bounds each chunk)
PURGE_SECONDS = 3600.0
# held while the database refuses writes, per worker: a one-minute outage at 500 requests a
# second is 30,000 requests, all of them in one worker at worst; this holds three such minutes.
# An iris request takes about 700 bytes held (backlog.ENTRY_OVERHEAD): 100,000 are 70 MB
DEFAULT_BUFFER_ROWS = 100_000
DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024


class Counting(Protocol):
    """What the log counts into: a prometheus counter (child), or ``_NoCounter``."""

    def inc(self, amount: float = 1) -> None: ...


class Gauging(Protocol):
    """What the log reports how much it holds to: a prometheus gauge, or ``_NoCounter``."""

    def set(self, value: float) -> None: ...


class _NoCounter:
    def inc(self, amount: float = 1) -> None:
        return None

    def set(self, value: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """Which requests are logged: none, all, or a random fraction."""

    fraction: float

    @property
    def enabled(self) -> bool:
        return self.fraction > 0.0

    @classmethod
    def parse(cls, text: str) -> LogPolicy:
        """``off``, ``all`` (or ``on``) or a sample fraction in (0, 1]."""
        value = text.strip().lower()
        if value in ("off", "none", "false", "0", ""):
            return cls(0.0)
        if value in ("all", "on", "true"):
            return cls(1.0)
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(
                f"prediction log {text!r}: use off, all, or a sample fraction in (0, 1]",
                field="prediction_log",
            )
        return cls(fraction)


class PredictionLog:
    """A PredictionObserver writing sampled events to a PredictionStore from its own thread."""

    def __init__(
        self,
        open_store: Callable[[], PredictionStore],
        *,
        policy: LogPolicy | None = None,
        max_queue: int = DEFAULT_QUEUE,
        flush_seconds: float = FLUSH_SECONDS,
        dropped: Counting | None = None,
        written: Counting | None = None,
        retention: timedelta | None = None,
        buffer_rows: int = DEFAULT_BUFFER_ROWS,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        spool_dir: Path | None = None,
        held: Gauging | None = None,
    ) -> None:
        self.open_store = open_store
        self.fraction = (policy or LogPolicy(1.0)).fraction
        self.max_queue = max_queue
        self.flush_seconds = flush_seconds
        self.dropped: Counting = dropped if dropped is not None else _NoCounter()
        self.written: Counting = written if written is not None else _NoCounter()
        self.retention = retention
        self.buffer_rows = buffer_rows
        self.buffer_bytes = buffer_bytes
        self.spool_dir = spool_dir
        self.held_gauge: Gauging = held if held is not None else _NoCounter()
        self._backlog: Backlog | None = None
        self._outage: _Outage | None = None
        self._purged_at = -math.inf  # the first purge comes with the first write
        self._queue: deque[PredictionEvent] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = False
        self._drains = 0  # drains finished (flush waits for one begun after its call)
        self._thread: threading.Thread | None = None
        self._store: PredictionStore | None = None
        self._start_lock = threading.Lock()
        reset_after_fork(self, "_forget")

    # --- the hot path -------------------------------------------------------------------------
    def observe(self, event: PredictionEvent) -> None:
        if event.model == "-":  # no model was found: nothing to replay or join with
            return
        if self.fraction < 1.0 and random.random() >= self.fraction:  # noqa: S311 - sampling
            return
        if self._thread is None:
            self._start()
        queued = len(self._queue)
        if queued >= self.max_queue:
            self.dropped.inc()
            return
        if queued == self.max_queue // 2:
            self._wake.set()
        self._queue.append(event)

    # --- the writer ---------------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._backlog = Backlog(
                self.spool_dir, max_rows=self.buffer_rows, max_bytes=self.buffer_bytes
            )
            self._thread = threading.Thread(target=self._run, name="ferry-predlog", daemon=True)
            self._thread.start()

    def _forget(self) -> None:
        """In a forked worker: the parent's thread, queue and connections are not ours (its
        queue is the parent's to write), so start afresh on the first event."""
        self._queue = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._busy = False
        self._drains = 0
        self._store = None
        self._thread = None
        self._backlog = None  # the parent's spool files stay its own (under its lock)
        self._outage = None
        self._start_lock = threading.Lock()

    @property
    def store(self) -> PredictionStore:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def _run(self) -> None:
        assert self._backlog is not None
        adopted = self._backlog.adopt()
        if adopted:
            log.warning(
                "prediction log: took over %d requests spooled by a stopped process", adopted
            )
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self._drain_safely()
            self._purge()
        self._drain_safely()
        self._backlog.close()
        if self._backlog.rows:
            spooled = self._backlog.spooled_rows
            self.dropped.inc(self._backlog.rows - spooled)  # those in memory end with us
            log.error(
                "prediction log: stopped with %d requests not written: %d lost, %d in %s for "
                "the next start to write",
                self._backlog.rows,
                self._backlog.rows - spooled,
                spooled,
                self.spool_dir,
            )

    def _drain_safely(self) -> None:
        try:
            self._drain()
        except Exception:  # the thread's boundary (a spool file that cannot be removed...)
            log.exception("prediction log: the writer failed; it carries on")

    def _purge(self) -> None:
        """Once an hour, delete what is older than the retention (each worker may; the
        deletes are idempotent)."""
        if self.retention is None or time.monotonic() - self._purged_at < PURGE_SECONDS:
            return
        self._purged_at = time.monotonic()
        try:
            removed = self.store.purge(datetime.now(UTC) - self.retention)
        except Exception:  # the thread's boundary: try again in an hour
            log.exception("prediction log: purge failed")
            return
        if removed:
            log.info("prediction log: removed %d requests older than %s", removed, self.retention)

    def _drain(self) -> None:
        self._busy = True
        try:
            self._write_backlog()
            while self._queue:
                entries: list[Entry] = []
                while self._queue and len(entries) < BATCH_ROWS:
                    event = self._queue.popleft()
                    try:
                        entries.append(event_entry(event))
                    except Exception:  # an output orjson cannot write: lose this request
                        log.exception("prediction log: could not encode %s", event.request_id)
                        self.dropped.inc()
                if self.held:  # older requests wait (the database refused them this flush)
                    self._hold(entries)
                elif self._write(entries):
                    self._recovered()
                else:
                    self._hold(entries)
        finally:
            self.held_gauge.set(self.held)
            self._drains += 1
            self._busy = False

    def _write_backlog(self) -> None:
        """Held parts, oldest first, until one is refused again."""
        backlog = self._backlog
        assert backlog is not None
        while backlog.rows:
            try:
                entries = backlog.oldest()
            except (OSError, ValueError) as exc:  # a spool file gone or damaged
                log.error("prediction log: %d spooled requests lost: %s", backlog.oldest_count, exc)
                self.dropped.inc(backlog.oldest_count)
                backlog.release()
                continue
            if not self._write(entries):
                return
            backlog.release()
            if not backlog.rows:
                self._recovered()

    def _recovered(self) -> None:
        if self._outage is not None:
            outage, self._outage = self._outage, None
            log.warning(
                "prediction log: the database is back after %.1f s; every held request is "
                "written, %d dropped meanwhile",
                time.monotonic() - outage.since,
                outage.dropped,
            )

    def _write(self, entries: list[Entry]) -> bool:
        """Store ``entries``; False when the database cannot take them now (hold them)."""
        try:
            self.store.append(entries)
        except DatabaseUnavailable as exc:
            if self._outage is None:
                self._outage = _Outage(time.monotonic())
                log.warning(
                    "prediction log: cannot write (%s: %s); holding requests until the "
                    "database is back (at most %d, in %s)",
                    exc.details.get("cause", "unreachable"),
                    exc.__cause__,
                    self.buffer_rows,
                    self.spool_dir or "memory",
                )
            return False
        except Exception:  # the thread's boundary: a refused write loses these, not the log
            log.exception("prediction log: could not write %d requests", len(entries))
            self.dropped.inc(len(entries))
            return True
        self.written.inc(len(entries))
        return True

    def _hold(self, entries: list[Entry]) -> None:
        assert self._backlog is not None
        lost = self._backlog.hold(entries)
        if not lost:
            return
        self.dropped.inc(lost)
        outage = self._outage
        if outage is not None:
            if not outage.dropped:
                log.error(
                    "prediction log: %d requests held, the most allowed "
                    "(FERRY_PREDICTION_LOG_BUFFER, _BUFFER_BYTES): dropping new ones until the "
                    "database is back (counted in ferry_predlog_dropped_total)",
                    self._backlog.rows,
                )
            outage.dropped += lost

    @property
    def held(self) -> int:
        """Requests waiting for the database in this process (in spool files or memory)."""
        return self._backlog.rows if self._backlog is not None else 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Write what is queued now; True once this process's queue is empty and written
        (False while the database refuses it: held, not written)."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        # wait for a drain begun after this call: the one running now (if any) may not be
        busy = self._busy
        target = self._drains + 1 + busy
        self._wake.set()
        while self._queue or self._busy or self._drains < target:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
            self._wake.set()
        return not self.held

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30)
        if self._store is not None:
            self._store.close()
            self._store = None


@dataclass(slots=True)
class _Outage:
    """Since when the database refuses the log's writes, and what was dropped meanwhile."""

    since: float
    dropped: int = 0
