"""Leases and once-claims in the registry database (SQLite and PostgreSQL): one holder at a
time, taken over only after expiry, and exactly one winner among concurrent claimers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ferry.db.engine import create_engine
from ferry.db.leases import claim_once, hold_lease, new_holder, release_lease
from ferry.db.migrations import upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ferry.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_database")
    made = create_engine(url)
    yield made
    made.dispose()


def test_a_lease_has_one_holder_until_it_expires(engine: Engine) -> None:
    name = f"lease:test-{uuid.uuid4().hex}"
    first, second = new_holder(), new_holder()
    assert hold_lease(engine, name, first, ttl=60)
    assert not hold_lease(engine, name, second, ttl=60)
    assert hold_lease(engine, name, first, ttl=0.3)  # renewed, shorter
    assert not hold_lease(engine, name, second, ttl=60)
    time.sleep(0.5)  # the holder stopped renewing: the lease is free
    assert hold_lease(engine, name, second, ttl=60)
    assert not hold_lease(engine, name, first, ttl=60)
    release_lease(engine, name, first)  # not the holder: changes nothing
    assert not hold_lease(engine, name, first, ttl=60)
    release_lease(engine, name, second)
    assert hold_lease(engine, name, first, ttl=60)


def test_one_of_many_concurrent_claims_wins(engine: Engine) -> None:
    name = f"cooldown:test-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: claim_once(engine, name, 0.5), range(16)))
    assert won.count(True) == 1
    assert not claim_once(engine, name, 0.5)
    time.sleep(0.7)
    assert claim_once(engine, name, 0.5)
