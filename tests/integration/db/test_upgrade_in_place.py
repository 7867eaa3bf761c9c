"""Issue 14: the tables and migrations moved to ``ferry.db`` and each layer's ``tables.py``; a
database made by main (its migrations, its code, rows in every layer's tables) upgrades in
place with today's code: the stored revision id still resolves, every row survives, and
today's stores read them. SQLite and real PostgreSQL (CI=true: PostgreSQL must be there)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ferry.db.engine import create_engine
from ferry.db.migrations import HEAD, current_revision, upgrade
from ferry.db.schema import load_tables
from ferry.monitoring.storage import MonitoringStore
from ferry.packaging.jobs import BuildStore
from ferry.registry import Registry
from ferry.security.database import SecurityDatabase
from ferry.security.keys import KeyStore
from tests.registry_fixtures import PgFactory, unavailable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SEED = Path(__file__).with_name("seed_main.py")
MAIN_BEFORE_MOVE = "e17382ca4ab30d4b2ede47c6f4a6327d8bdf449e"


@pytest.fixture(scope="module")
def main_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main's ``src`` (before the move), extracted from git."""
    dest = tmp_path_factory.mktemp("main")
    # the last commit before the move, pinned: once this branch is merged, main is the new tree
    for ref in (MAIN_BEFORE_MOVE, "main"):
        run = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"],
            capture_output=True,
        )
        if run.returncode == 0:
            with tarfile.open(fileobj=io.BytesIO(run.stdout)) as tar:
                tar.extractall(dest, filter="data")
            return dest / "src"
    unavailable("no main branch to build the old database from")
    raise AssertionError("unreachable")  # pragma: no cover


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
                for table in load_tables().sorted_tables
            }
    finally:
        engine.dispose()


def _check(url: str, main_src: Path, iris_bundle: Path, tmp_path: Path) -> None:
    artifacts = (tmp_path / "artifacts").as_uri()
    env = {**os.environ, "PYTHONPATH": f"{main_src}{os.pathsep}{ROOT}", "FERRY_HOME": str(tmp_path)}
    seeded = subprocess.run(
        [sys.executable, str(SEED), url, artifacts, str(iris_bundle)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stderr
    old = json.loads(seeded.stdout.strip().splitlines()[-1])
    assert old["revision"] == HEAD  # main's head: the id today's migrations must know

    before = _dump(url)
    assert all(before.values()), [name for name, rows in before.items() if not rows]

    assert upgrade(url) == HEAD
    assert current_revision(url) == HEAD
    assert _dump(url) == before  # every row of every layer's tables survived

    with Registry.open(url, artifacts) as registry:
        version = registry.get_version("iris", 1)
        assert version.sha256 == old["sha256"]
        assert version.metrics == {"accuracy": 0.97}
        assert [a.version for a in registry.list_aliases("iris")] == [1]
        assert registry.get_model("iris").tags == {"owner": "ml"}
    keys = KeyStore(SecurityDatabase(url), b"s" * 32)
    assert keys.verify(old["token"]).name == "ci"
    keys.database.close()
    builds = BuildStore(url)
    try:
        assert builds.get(old["build"]).options == {"tag": "iris:1"}
    finally:
        builds.close()
    with MonitoringStore.open(url) as store:
        [imported] = store.telemetry("edge-1")
        assert imported.summary == {"requests": 3}
        assert store.profiled_versions() == [("iris", 1)]


def test_sqlite_database_from_main_upgrades_in_place(
    main_src: Path, iris_bundle: Path, tmp_path: Path
) -> None:
    _check(f"sqlite:///{tmp_path / 'ferry.db'}", main_src, iris_bundle, tmp_path)


def test_postgres_database_from_main_upgrades_in_place(
    main_src: Path, iris_bundle: Path, tmp_path: Path, pg_database_factory: PgFactory
) -> None:
    _check(pg_database_factory(), main_src, iris_bundle, tmp_path)
