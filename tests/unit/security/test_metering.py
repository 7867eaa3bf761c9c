"""Usage metering: exact totals per principal/model/version/day after concurrent observing."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from ferry.db.events import PredictionEvent
from ferry.ids import ANONYMOUS
from ferry.security.database import SecurityDatabase
from ferry.security.metering import UsageMeter, read_usage, usage_csv


def event(principal: str | None, model: str, rows: int, status: int = 200) -> PredictionEvent:
    return PredictionEvent(
        request_id="r",
        model=model,
        version="1",
        protocol="native",
        status=status,
        rows=rows,
        seconds=0.002,
        timestamp=time.time(),
        principal=principal,
    )


def test_totals_are_exact_after_concurrent_load(security_db: SecurityDatabase) -> None:
    meter = UsageMeter(security_db, flush_seconds=0.05)  # many flushes while observing

    def load(principal: str) -> None:
        for i in range(500):
            meter.observe(event(principal, "iris", rows=1 + i % 3))
            meter.observe(event(principal, "wine", rows=0, status=422))

    threads = [threading.Thread(target=load, args=(p,)) for p in ("a", "b", "a")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    meter.observe(event(None, "iris", rows=5))
    meter.close()
    rows = {(r.principal, r.model): r for r in read_usage(security_db)}
    expected_rows = sum(1 + i % 3 for i in range(500))
    assert rows["a", "iris"].requests == 1000
    assert rows["a", "iris"].rows == 2 * expected_rows
    assert rows["a", "wine"].errors == 1000
    assert rows["b", "iris"].rows == expected_rows
    assert rows["b", "iris"].compute_ms == pytest.approx(500 * 2.0)
    assert rows[ANONYMOUS, "iris"].rows == 5  # no principal: counted as anonymous
    today = date.today()
    assert read_usage(security_db, since=today, principals=["b"], model="wine")[0].requests == 500
    assert read_usage(security_db, until=date(2000, 1, 1)) == []
    csv = usage_csv(read_usage(security_db, principals=["b"])).splitlines()
    assert csv[0] == "day,principal,key_name,model,version,requests,rows,errors,compute_ms"
    assert len(csv) == 3


def test_flushes_add_to_stored_totals(security_db: SecurityDatabase) -> None:
    for _ in range(2):  # two servers' lifetimes, one after the other
        meter = UsageMeter(security_db)
        meter.observe(event("k", "iris", rows=10))
        meter.close()
    (row,) = read_usage(security_db)
    assert (row.requests, row.rows) == (2, 20)
