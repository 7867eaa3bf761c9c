"""Database deadlines (issue 13): a statement past ``FERRY_DB_STATEMENT_TIMEOUT_SECONDS``, a
server that accepts the connection and never answers, and a pool with no free connection all
fail in bounded time as ``StorageUnavailable`` (503), never a hang."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from ferry.config.settings import get_settings
from ferry.db.engine import Connections, create_engine, postgres_deadlines
from ferry.db.migrations import upgrade
from ferry.errors import StorageError, StorageUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def deadlines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FERRY_DB_STATEMENT_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("FERRY_DB_CONNECT_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("FERRY_DB_POOL_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_long_statement_is_cancelled_at_the_statement_timeout(
    deadlines: None, pg_database: str
) -> None:
    engine = create_engine(pg_database)
    db = Connections(engine, "the test store")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="statement timeout"), db.read() as conn:
        conn.execute(sa.text("SELECT pg_sleep(30)"))
    assert time.monotonic() - started < 2.0
    with db.read() as conn:  # the pool is usable afterwards
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_a_server_that_never_answers_fails_at_the_connect_timeout(deadlines: None) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        engine = create_engine(f"postgresql://ferry@127.0.0.1:{port}/ferry")
        db = Connections(engine, "the test store")
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="timeout"), db.read() as conn:
            conn.execute(sa.text("SELECT 1"))
        elapsed = time.monotonic() - started
        engine.dispose()
    # libpq's timeout applies per address tried; pre-ping and the real connect may both wait
    assert elapsed < 9.0, elapsed


def test_no_free_pooled_connection_fails_at_the_pool_timeout(
    deadlines: None, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ferry.db'}"
    upgrade(url)
    engine = create_engine(url)
    db = Connections(engine, "the test store")
    with ExitStack() as held:
        for _ in range(15):  # QueuePool: 5 kept plus 10 overflow
            held.enter_context(engine.connect())
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="QueuePool limit"), db.read():
            pass
        assert time.monotonic() - started < 2.0
    engine.dispose()


def test_the_url_can_set_its_own_postgres_deadlines() -> None:
    url = sa.engine.make_url("postgresql+psycopg://u@h/db")
    assert postgres_deadlines(url, 0.5, 1.25) == {
        "connect_timeout": 2,
        "options": "-c statement_timeout=1250",
    }
    assert postgres_deadlines(url, 10, 0) == {"connect_timeout": 10}
    own = sa.engine.make_url("postgresql+psycopg://u@h/db?connect_timeout=3&options=-cx%3D1")
    assert postgres_deadlines(own, 10, 60) == {}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_bad_query_is_not_unavailable(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SQLite reports bad SQL as OperationalError too: only deadlines and lost servers are
    503s; a missing table stays a plain StorageError."""
    url = (
        f"sqlite:///{tmp_path / 'ferry.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    engine = create_engine(url)
    db = Connections(engine, "the test store")
    with pytest.raises(StorageError) as raised, db.read() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert not isinstance(raised.value, StorageUnavailable)
    engine.dispose()
