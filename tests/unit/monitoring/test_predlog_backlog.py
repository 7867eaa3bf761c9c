"""The prediction log while its database refuses writes: requests are held (in spool files,
or in memory when their folder fails), bounded, written when the database is back, and what
did not fit is counted; spool files of a stopped writer are taken over by the next."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from ferry.db.events import PredictionEvent
from ferry.model.signature import Batch
from ferry.monitoring.predlog import PredictionLog, PredictionStore
from ferry.monitoring.predlog.backlog import SUFFIX, decode, encode
from ferry.monitoring.predlog.codec import event_entry


class Count:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


def event(request_id: str, row: float, *, model: str = "m") -> PredictionEvent:
    batch = Batch.of_matrix(np.array([[row, -row]]), ["a", "b"])
    return PredictionEvent(
        request_id=request_id,
        model=model,
        version="1",
        protocol="native",
        status=200,
        rows=1,
        seconds=0.001,
        timestamp=time.time(),
        principal=None,
        error_code=None,
        inputs=batch,
        outputs={"predictions": np.array([int(row) % 3])},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PredictionStore]:
    opened = PredictionStore.open(f"sqlite:///{tmp_path / 'db' / 'log.db'}", migrate=True)
    yield opened
    opened.close()


@contextmanager
def database_away(store: PredictionStore) -> Iterator[None]:
    """The database's folder gone: every connection fails ("unable to open database file"),
    as with a stopped server; then back."""
    folder = Path(str(store.engine.url.database)).parent
    store.engine.dispose()  # pooled connections would keep the moved file open
    away = folder.with_name("db-away")
    folder.rename(away)
    try:
        yield
    finally:
        away.rename(folder)


@contextmanager
def disk_full(store: PredictionStore) -> Iterator[None]:
    """SQLite answering SQLITE_FULL ("database or disk is full"), as on a full disk: each
    connection may not grow the file past the pages it has."""

    def cap(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    store.engine.dispose()
    sa.event.listen(store.engine, "connect", cap)
    try:
        yield
    finally:
        sa.event.remove(store.engine, "connect", cap)
        store.engine.dispose()


def wait_for(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.01)


def test_an_outage_loses_no_request(store: PredictionStore, tmp_path: Path) -> None:
    dropped, written, held = Count(), Count(), Count()
    spool = tmp_path / "spool"
    log = PredictionLog(
        lambda: store,
        flush_seconds=0.02,
        dropped=dropped,
        written=written,
        spool_dir=spool,
        held=held,
    )
    log.observe(event("before", 0.0))
    assert log.flush()
    with database_away(store):
        for i in range(300):
            log.observe(event(f"r{i}", float(i)))
            if i % 100 == 99:
                wait_for(lambda: not log._queue)  # several writes refused, several parts
        wait_for(lambda: log.held == 300)
        assert not log.flush(timeout=0.2)  # held, not written
        assert held.value == 300
        files = sorted(spool.glob("*" + SUFFIX))
        assert len(files) >= 3
        assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
        assert spool.stat().st_mode & 0o777 == 0o700
        assert sum(len(decode(f.read_bytes())) for f in files) == 300
    assert log.flush()
    assert (dropped.value, written.value, log.held, held.value) == (0, 301, 0, 0)
    assert store.count("m") == 301
    assert not list(spool.glob("*" + SUFFIX))
    found = store.get("r123")
    assert found.inputs == {"a": [123.0], "b": [-123.0]}
    assert found.outputs == {"predictions": [0]}
    log.observe(event("after", 1.0))  # and the log carries on as before
    assert log.flush()
    assert store.count("m") == 302
    log.close()


@pytest.mark.parametrize("spooled", [True, False], ids=["spool", "memory"])
def test_a_minute_at_500_a_second_fits_the_default_bounds(
    store: PredictionStore, tmp_path: Path, spooled: bool
) -> None:
    """The acceptance's outage: 30,000 requests (a minute at 500 a second, all in one worker)
    with the default bounds, spooled or, when the spool folder fails, in memory."""
    dropped = Count()
    log = PredictionLog(
        lambda: store,
        flush_seconds=0.05,
        dropped=dropped,
        spool_dir=tmp_path / "spool" if spooled else None,
    )
    with database_away(store):
        for second in range(60):
            for i in range(500):
                log.observe(event(f"r{second}-{i}", float(i)))
            wait_for(lambda: not log._queue)  # the writer keeps up with 500 a second
        wait_for(lambda: log.held == 30_000)
        assert dropped.value == 0
    assert log.flush(timeout=60)
    assert (dropped.value, store.count("m")) == (0, 30_000)
    log.close()


def test_a_full_disk_keeps_requests_in_memory_until_it_has_room(
    store: PredictionStore, tmp_path: Path
) -> None:
    """The database and the spool folder on one full disk (SQLite under FERRY_HOME): the
    spool cannot take them either (a file where its folder should be fails the same way)."""
    dropped = Count()
    spool = tmp_path / "spool"
    spool.write_text("not a folder")
    log = PredictionLog(lambda: store, flush_seconds=0.02, dropped=dropped, spool_dir=spool)
    with disk_full(store):
        for i in range(2000):  # more than the free pages of the database file take
            log.observe(event(f"r{i}", float(i)))
        wait_for(lambda: log.held == 2000)
    assert log.flush()
    assert (dropped.value, store.count("m")) == (0, 2000)
    log.close()


def test_past_its_bounds_the_backlog_drops_and_counts(
    store: PredictionStore, tmp_path: Path
) -> None:
    dropped = Count()
    log = PredictionLog(
        lambda: store,
        flush_seconds=0.02,
        dropped=dropped,
        buffer_rows=50,
        spool_dir=tmp_path / "spool",
    )
    with database_away(store):
        for i in range(120):
            log.observe(event(f"r{i}", float(i)))
        wait_for(lambda: not log._queue and not log._busy and log.held == 50)
        assert dropped.value == 70
    assert log.flush()
    assert store.count("m") == 50
    assert {r.request_id for r in store.records("m", limit=100)} == {f"r{i}" for i in range(50)}
    log.close()
    small = PredictionLog(
        lambda: store, flush_seconds=0.02, dropped=dropped, buffer_bytes=10_000, spool_dir=None
    )
    with database_away(store):
        for i in range(40):
            small.observe(event(f"s{i}", float(i)))
        wait_for(lambda: not small._queue and not small._busy)
        assert 0 < small.held < 40
        assert dropped.value == 70 + 40 - small.held
    assert small.flush()
    small.close()


def test_a_new_writer_takes_over_a_stopped_writers_spool(
    store: PredictionStore, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first = PredictionLog(lambda: store, flush_seconds=0.02, spool_dir=spool)
    with database_away(store):
        for i in range(100):
            first.observe(event(f"r{i}", float(i)))
        wait_for(lambda: first.held == 100)
        alive = PredictionLog(lambda: store, flush_seconds=0.02, spool_dir=spool)
        alive.observe(event("alive", 1.0))
        wait_for(lambda: alive.held == 1)  # its own only: the first one's lock is held
        first.close()  # stopped mid-outage: its requests stay in its spool files
        alive.close()
    assert store.count("m") == 0
    assert len(list(spool.glob("*.lock"))) == 2
    second = PredictionLog(lambda: store, flush_seconds=0.02, spool_dir=spool)
    second.observe(event("later", 1.0))
    wait_for(lambda: store.count("m") == 102)
    assert second.flush()
    assert not list(spool.glob("*" + SUFFIX))
    assert store.get("r42").inputs == {"a": [42.0], "b": [-42.0]}
    second.close()
    assert not list(spool.glob("*.lock"))


def test_spooled_entries_read_back_exactly() -> None:
    plain = event("0191d7d8e2a07a3b8f1c2d3e4f5a6b7c", 2.0)
    texts = PredictionEvent(
        request_id="client-id-é",
        model="m",
        version="3",
        protocol="mlflow",
        status=422,
        rows=0,
        seconds=0.25,
        timestamp=1.5e9,
        principal="key-1",
        error_code="invalid_value",
        inputs=None,
        outputs=None,
    )
    entries = [event_entry(plain), event_entry(texts)]
    assert decode(encode(entries)) == entries
    assert decode(encode([])) == []
    blob = encode(entries)
    with pytest.raises(ValueError, match="cut short"):
        decode(blob[:-3])
    with pytest.raises(ValueError, match="not a prediction log spool"):
        decode(b"garbage")


def test_stopping_mid_outage_counts_what_memory_held(store: PredictionStore) -> None:
    dropped = Count()
    log = PredictionLog(lambda: store, flush_seconds=0.02, dropped=dropped, spool_dir=None)
    with database_away(store):
        for i in range(30):
            log.observe(event(f"r{i}", float(i)))
        wait_for(lambda: log.held == 30)
        log.close()
    assert dropped.value == 30  # no spool to leave them in: lost, and counted
