"""``Connections``: the one translation of database errors that the registry's metadata store
and the monitoring tables share (a refused write is a Conflict, any other failure a
StorageError naming the store and the URL without its password)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ferry.db.engine import Connections, create_engine
from ferry.db.leases import quota_counters
from ferry.db.migrations import upgrade
from ferry.errors import Conflict, StorageError
from ferry.monitoring.storage import MonitoringStore
from ferry.registry.metadata.sql import SqlMetadataStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        made = f"sqlite:///{tmp_path / 'ferry.db'}"
        upgrade(made)
        return made
    found: str = request.getfixturevalue("pg_database")
    return found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    made = create_engine(url)
    yield made
    made.dispose()


def test_a_refused_write_is_a_conflict_and_nothing_is_written(engine: Engine) -> None:
    db = Connections(engine, "the test store")
    row = {"name": "connections-test", "count": 1, "expires_at": 0.0}
    with db.write() as conn:
        conn.execute(sa.delete(quota_counters).where(quota_counters.c.name == row["name"]))
        conn.execute(sa.insert(quota_counters).values(**row))

    def update_then_conflict() -> None:
        with db.write() as conn:
            renewed = sa.update(quota_counters).values(count=2)
            conn.execute(renewed.where(quota_counters.c.name == row["name"]))
            conn.execute(sa.insert(quota_counters).values(**row))

    with pytest.raises(Conflict, match="the test store refused a conflicting write"):
        update_then_conflict()
    with db.read() as conn:
        count = conn.execute(
            sa.select(quota_counters.c.count).where(quota_counters.c.name == row["name"])
        ).scalar_one()
    assert count == 1  # the transaction was rolled back


def test_a_failed_query_is_a_storage_error_naming_the_store(engine: Engine) -> None:
    db = Connections(engine, "the test store")

    def query() -> None:
        with db.read() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    with pytest.raises(StorageError, match=r"the test store at .* failed") as raised:
        query()
    assert "no_such_table" in raised.value.message
    if engine.url.password:
        assert str(engine.url.password) not in raised.value.message


def test_both_stores_translate_through_it(url: str, tmp_path: Path) -> None:
    metadata = SqlMetadataStore(url)
    monitoring = MonitoringStore.open(url)
    try:
        with metadata.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE models RENAME TO models_gone"))
        try:
            with pytest.raises(StorageError, match="the registry database at"):
                metadata.get_model("iris")
            with pytest.raises(StorageError, match="the monitoring tables at"):
                monitoring.profiled_versions()
        finally:
            with metadata.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE models_gone RENAME TO models"))
    finally:
        metadata.close()
        monitoring.close()
