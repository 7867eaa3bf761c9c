"""A PostgreSQL cluster of a test's own (initdb + pg_ctl on a free port), which it may kill
and restart: the machine's shared server must never be stopped by a test.

PostgreSQL refuses to run as root, and CI runs the suite as root: the cluster then runs as
the ``postgres`` user (``runuser``), in a folder of its own under the system's temporary
folder (pytest's ``tmp_path`` is private to root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.registry_fixtures import free_port, unavailable

PG_BIN = Path(os.environ.get("FERRY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_SECONDS = 60


@dataclass(frozen=True)
class Cluster:
    folder: Path
    port: int
    user: str | None  # who runs it (None: this process's user)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ferry"

    def run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        done = subprocess.run(  # noqa: S603 - PostgreSQL's own tools
            [*prefix, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)}: {done.stdout}{done.stderr}\n{tail}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            str(PG_BIN / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(START_SECONDS),
            "-D",
            str(self.folder / "data"),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
        )

    def kill(self) -> None:
        """Stop it the hard way: every process at once, no checkpoint (as a crash would)."""
        self.run(str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.folder / "data"))


@contextmanager
def own_postgres() -> Iterator[Cluster]:
    """A fresh cluster with an empty database ``ferry`` (trust auth, user ``postgres``)."""
    if not (PG_BIN / "initdb").exists():
        unavailable(f"no PostgreSQL binaries in {PG_BIN} (apt-get install postgresql-15)")
    user = None
    folder = Path(tempfile.mkdtemp(prefix="ferry-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        try:
            record = pwd.getpwnam(user)
        except KeyError:
            unavailable("running as root and there is no postgres user to run PostgreSQL as")
        os.chown(folder, record.pw_uid, record.pw_gid)
    cluster = Cluster(folder, free_port(), user)
    try:
        cluster.run(
            str(PG_BIN / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        cluster.start()
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE ferry")
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):  # not running (never started, or killed)
            cluster.kill()
        shutil.rmtree(folder, ignore_errors=True)
