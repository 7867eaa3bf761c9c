"""The builds table: one live build per version, logs appended, abandoned builds expire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ferry.db.migrations import upgrade
from ferry.errors import BuildInProgress, BuildNotFound
from ferry.packaging.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, BuildStore
from ferry.packaging.tables import builds


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BuildStore]:
    url = f"sqlite:///{tmp_path / 'ferry.db'}"
    upgrade(url)
    opened = BuildStore(url)
    yield opened
    opened.close()


def test_one_live_build_per_version(store: BuildStore) -> None:
    first = store.create("iris", 1, {"tag": "x"}, "alice")
    assert first.status == QUEUED
    with pytest.raises(BuildInProgress) as caught:
        store.create("iris", 1, {}, "bob")
    assert caught.value.details["build"] == first.id
    other = store.create("iris", 2, {}, "bob")  # another version is free
    store.running(first.id)
    store.append(first.id, "line one\n")
    store.append(first.id, "line two\n")
    assert store.get(first.id).status == RUNNING
    assert store.get(first.id).log == "line one\nline two\n"
    store.finish(first.id, error=None, image="localhost/ferry/iris:1", size=123)
    done = store.get(first.id)
    assert (done.status, done.image, done.size) == (SUCCEEDED, "localhost/ferry/iris:1", 123)
    assert done.error is None
    assert done.finished_at is not None
    again = store.create("iris", 1, {}, "carol")  # finished: a new one may start
    store.finish(again.id, error="pip failed")
    assert store.get(again.id).status == FAILED
    assert [b.id for b in store.list("iris", 1)] == [again.id, first.id]
    assert store.get(other.id).status == QUEUED


def test_an_abandoned_build_expires(store: BuildStore) -> None:
    stuck = store.create("iris", 1, {}, "alice")
    old = datetime.now(UTC) - timedelta(hours=1)
    with store._engine.begin() as conn:
        conn.execute(sa.update(builds).where(builds.c.id == stuck.id).values(updated_at=old))
    fresh = store.create("iris", 1, {}, "bob")  # the dead server's build no longer blocks
    expired = store.get(stuck.id)
    assert expired.status == FAILED
    assert "abandoned" in (expired.error or "")
    assert store.get(fresh.id).status == QUEUED


def test_unknown_build(store: BuildStore) -> None:
    with pytest.raises(BuildNotFound):
        store.get("nope")
