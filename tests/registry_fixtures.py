"""Registry backends for tests: SQLite + a local folder, and PostgreSQL + an S3-compatible server.

PostgreSQL is the machine's own on 127.0.0.1:5432 (trust auth, user ``postgres`` or ``root``):
each test session (each xdist worker) creates a fresh ``ferry_test_<random>`` database, migrates
it once, empties it before every test, and drops it at the end. S3 is ``moto_server`` from the
venv on a free loopback port, started once per session, with one bucket; every test gets its
own key prefix. With ``CI=true`` an unreachable PostgreSQL or moto fails the test loudly;
elsewhere the PostgreSQL/S3 half of the suite is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ferry.model.bundle import list_files
from ferry.model.manifest import MANIFEST_FILE, read_manifest
from ferry.registry import Registry

PG_HOST = os.environ.get("FERRY_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FERRY_TEST_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")
S3_BUCKET = "ferry-test"
# moto checks no signatures unless IAM is set up; boto3 still wants some credentials
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "ferry-test",
    "AWS_SECRET_ACCESS_KEY": "ferry-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BACKENDS = ["sqlite-local", "postgres-s3"]

PgFactory = Callable[[], str]

__all__ = [  # the fixtures; tests import the helpers from this module directly
    "pg_database",
    "pg_database_factory",
    "pg_server",
    "registry",
    "registry_backend",
    "s3_bucket",
    "s3_endpoint",
]


def unavailable(reason: str) -> None:
    """Fail under CI (a missing service is a broken setup), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the registry suite needs it)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Backend:
    """Where one test's registry lives; ``env`` configures a subprocess the same way."""

    name: str
    database_url: str
    artifacts_url: str
    s3_endpoint_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def open(self, *, migrate: bool = True) -> Registry:
        return Registry.open(
            self.database_url,
            self.artifacts_url,
            s3_endpoint_url=self.s3_endpoint_url,
            migrate=migrate,
        )

    @property
    def ferry_env(self) -> dict[str, str]:
        env = {"FERRY_DATABASE_URL": self.database_url, "FERRY_ARTIFACTS": self.artifacts_url}
        if self.s3_endpoint_url:
            env["FERRY_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        return {**self.env, **env}


# --- PostgreSQL -------------------------------------------------------------------------------
def _pg_admin_url() -> str:
    import psycopg

    errors = []
    for user in PG_USERS:
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname="postgres", connect_timeout=3
            ):
                return f"postgresql://{user}@{PG_HOST}:{PG_PORT}"
        except psycopg.Error as exc:
            errors.append(f"{user}: {str(exc).strip()}")
    unavailable(f"PostgreSQL on {PG_HOST}:{PG_PORT} is not reachable ({'; '.join(errors)})")
    raise AssertionError("unreachable")  # pragma: no cover


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """``postgresql://user@127.0.0.1:5432`` (no database), or fail/skip."""
    return _pg_admin_url()


@pytest.fixture(scope="session")
def pg_database_factory(pg_server: str) -> Iterator[PgFactory]:
    """Create fresh empty databases on demand; all are dropped at the end of the session."""
    created: list[str] = []

    def create() -> str:
        name = f"ferry_test_{uuid.uuid4().hex[:12]}"
        _admin(pg_server, f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{pg_server}/{name}"

    yield create
    for name in created:
        _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database(pg_database_factory: PgFactory) -> str:
    """The session's registry database, migrated once."""
    from ferry.db.migrations import upgrade

    url = pg_database_factory()
    upgrade(url)
    return url


def _empty_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    # every table but the migration stamp: tables without a path to models (telemetry imports,
    # quota counters, leases) would otherwise carry rows from one test into the next
    with psycopg.connect(url, autocommit=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        tables = sql.SQL(", ").join(map(sql.Identifier, names))
        connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))


# --- S3 (moto) --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``moto_server`` on a free loopback port, with AWS test credentials in the env."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        unavailable(
            f"moto_server is not installed next to {sys.executable} (pip install moto[server])"
        )
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    saved = {key: os.environ.get(key) for key in S3_ENV}
    os.environ.update(S3_ENV)
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the venv's own moto_server
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, process, log)
        yield endpoint
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            unavailable(f"moto_server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    unavailable(f"moto_server did not listen on port {port} within 30 s")


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=S3_BUCKET)
    return S3_BUCKET


# --- one registry per test --------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def registry_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite-local":
        return Backend(
            "sqlite-local", f"sqlite:///{tmp_path / 'ferry.db'}", str(tmp_path / "artifacts")
        )
    database: str = request.getfixturevalue("pg_database")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    _empty_database(database)
    return Backend(
        "postgres-s3",
        database,
        f"s3://{bucket}/{uuid.uuid4().hex[:12]}",
        endpoint,
        env=dict(S3_ENV),
    )


@pytest.fixture
def registry(registry_backend: Backend) -> Iterator[Registry]:
    opened = registry_backend.open()
    yield opened
    opened.close()


# --- bundles ----------------------------------------------------------------------------------
def bundle_variant(source: Path, dest: Path, salt: str, *, extra_bytes: int = 0) -> Path:
    """A copy of a bundle with one more file (``extra/salt.txt``), so its content differs.

    ``extra_bytes`` adds ``model/big.bin`` of that many random bytes (written in chunks).
    """
    shutil.copytree(source, dest)
    (dest / "extra").mkdir()
    (dest / "extra" / "salt.txt").write_text(salt, encoding="utf-8")
    if extra_bytes:
        with (dest / "model" / "big.bin").open("wb") as out:
            left = extra_bytes
            while left:
                chunk = min(left, 4 * 1024 * 1024)
                out.write(os.urandom(chunk))
                left -= chunk
    manifest = read_manifest(dest)
    manifest.model_copy(update={"files": list_files(dest)}).dump(dest / MANIFEST_FILE)
    return dest
