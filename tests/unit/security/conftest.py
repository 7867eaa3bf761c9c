"""A migrated security database per test: a SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.security.database import SecurityDatabase
from tests.registry_fixtures import PgFactory


@pytest.fixture(params=["sqlite", "postgres"])
def security_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecurityDatabase]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ferry.db'}"
    else:
        factory: PgFactory = request.getfixturevalue("pg_database_factory")
        url = factory()
    database = SecurityDatabase(url)
    database.migrate()
    yield database
    database.close()
