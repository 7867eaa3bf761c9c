"""Migrations: an empty database gets the schema, running again changes nothing, and the
migrated schema is exactly what tables.py declares."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from ferry.db.engine import create_engine
from ferry.db.migrations import HEAD, SCRIPT_LOCATION, current_revision, upgrade
from ferry.db.schema import load_tables, metadata
from ferry.registry import Registry

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    factory: Callable[[], str] = request.getfixturevalue("pg_database_factory")
    return factory()


def _schema_diff(url: str) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_an_empty_database_then_again(empty_database: str) -> None:
    assert current_revision(empty_database) is None
    assert upgrade(empty_database) == HEAD
    assert current_revision(empty_database) == HEAD
    assert _schema_diff(empty_database) == []
    engine = create_engine(empty_database)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(load_tables().tables) | {"alembic_version"} == tables
    assert upgrade(empty_database) == HEAD  # idempotent
    assert _schema_diff(empty_database) == []


def test_concurrent_upgrades_are_serialised(empty_database: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(upgrade(empty_database))
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert results == [HEAD] * 4


def test_registry_open_migrates(empty_database: str, tmp_path: Path, iris_bundle: Path) -> None:
    with Registry.open(empty_database, str(tmp_path / "artifacts")) as registry:
        assert registry.register(iris_bundle, "iris").version == 1
    assert current_revision(empty_database) == HEAD


def test_migration_scripts_ship_as_package_files() -> None:
    names = {p.relative_to(SCRIPT_LOCATION).as_posix() for p in SCRIPT_LOCATION.rglob("*.py")}
    assert {"env.py", "__init__.py", "versions/0001_initial.py"} <= names


def test_audit_log_is_append_only(empty_database: str, tmp_path: Path) -> None:
    from sqlalchemy.exc import DBAPIError

    with Registry.open(empty_database, str(tmp_path / "artifacts")) as registry:
        registry.create_model("iris", actor="alice")
    engine = create_engine(empty_database)
    try:
        for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.exec_driver_sql(statement)
        with engine.connect() as connection:
            actors = connection.exec_driver_sql("SELECT actor FROM audit_log").scalars().all()
    finally:
        engine.dispose()
    assert actors == ["alice"]
