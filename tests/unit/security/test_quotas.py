"""Quota counters shared between processes (SQL or Redis) and the gate that uses them."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.db.events import PredictionEvent
from ferry.errors import RateLimited
from ferry.security.database import SecurityDatabase
from ferry.security.identity import Principal
from ferry.security.quotas import Counters, QuotaGate, RedisCounters, SqlCounters
from ferry.security.scopes import parse_scopes
from tests.registry_fixtures import unavailable

REDIS_URL = os.environ.get("FERRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_counters() -> RedisCounters:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is not reachable: {exc}")
    return RedisCounters(REDIS_URL)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def counters(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Counters]:
    if request.param == "redis":
        yield redis_counters()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ferry.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")()
    database = SecurityDatabase(url)
    database.migrate()
    yield SqlCounters(database)
    database.close()


def test_concurrent_adds_are_exact(counters: Counters) -> None:
    name = f"test:{uuid.uuid4().hex}"

    def add() -> None:
        for _ in range(50):
            counters.add(name, 2, ttl=60)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.get(name) == 400
    assert counters.get(f"{name}:other") == 0


def principal(**limits: int) -> Principal:
    return Principal(uuid.uuid4().hex[:16], "ci", "key", parse_scopes(["predict"]), **limits)


def test_requests_per_minute(counters: Counters) -> None:
    gate = QuotaGate(counters)
    who = principal(requests_per_minute=3)
    if time.time() % 60 > 55:  # stay inside one window
        time.sleep(6)
    for _ in range(3):
        gate.check(who)
    with pytest.raises(RateLimited) as caught:
        gate.check(who)
    assert 1 <= caught.value.details["retry_after"] <= 60  # type: ignore[operator]
    assert caught.value.details["limit"] == "requests_per_minute"


def test_rows_per_day_are_charged_after_and_checked_before(counters: Counters) -> None:
    gate = QuotaGate(counters)
    who = principal(rows_per_day=100)
    gate.check(who)

    def answered(rows: int) -> PredictionEvent:
        return PredictionEvent("r", "iris", "1", "native", 200, rows, 0.001, time.time(), who.id)

    gate.observe(answered(60))
    gate.check(who)
    gate.observe(answered(40))
    with pytest.raises(RateLimited, match="rows"):
        gate.check(who)  # the uncharged rows count already
    gate.close()
    with pytest.raises(RateLimited):
        QuotaGate(counters).check(who)  # another process sees the charged rows
