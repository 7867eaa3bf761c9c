"""A registry home with real models and API keys, and real ``ferry server --auth`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from ferry.config.settings import Settings
from ferry.registry import Registry
from ferry.security.keys import KeyStore
from tests.integration.conftest import start_ferry, stop_server

ISOLATED = ("FERRY_DATABASE_URL", "FERRY_ARTIFACTS", "FERRY_S3_ENDPOINT_URL", "FERRY_URL")
ISOLATED_PREFIXES = ("FERRY_AUTH", "FERRY_JWT_", "FERRY_REDIS_URL", "FERRY_API_KEY")


@dataclass
class Home:
    path: Path

    @property
    def env(self) -> dict[str, str]:
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in ISOLATED and not k.startswith(ISOLATED_PREFIXES)
        }
        return {**inherited, "FERRY_HOME": str(self.path)}

    def settings(self) -> Settings:
        return Settings(home=self.path)

    def key(
        self,
        name: str,
        *scopes: str,
        expires: timedelta | None = None,
        requests_per_minute: int | None = None,
        rows_per_day: int | None = None,
    ) -> str:
        store = KeyStore.from_settings(self.settings())
        try:
            return store.create(
                name,
                scopes,
                expires_in=expires,
                requests_per_minute=requests_per_minute,
                rows_per_day=rows_per_day,
            ).token
        finally:
            store.database.close()

    def ferry(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The ``ferry`` CLI on this home, as a user runs it."""
        return subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", *args],
            capture_output=True,
            text=True,
            env={**self.env, "COLUMNS": "200", "NO_COLOR": "1", **env},
            timeout=120,
            check=False,
        )


@pytest.fixture
def home(tmp_path: Path, iris_bundle: Path) -> Home:
    """A fresh home with ``iris`` registered, and ``open`` (the same model) tagged public."""
    path = tmp_path / "home"
    with Registry.from_settings(Settings(home=path)) as registry:
        registry.register(iris_bundle, "iris")
        registry.register(iris_bundle, "open")
        registry.update_model("open", tags={"public": "true"})
    return Home(path)


class StartServer:
    """``ferry server ARGS`` over a home, on a free port: returns its base URL."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def __call__(self, home: Home, *args: str, **env: str) -> str:
        log = self.logs / f"server-{len(self.running)}.log"
        process, url = start_ferry(["server", *args], log=log, env={**home.env, **env})
        self.running[url] = process
        return url

    def stop(self, url: str) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code."""
        process = self.running.pop(url)
        stop_server(process)
        return process.returncode

    def stop_all(self) -> None:
        for url in list(self.running):
            self.stop(url)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Servers for one test, stopped (SIGTERM) after it."""
    starter = StartServer(tmp_path)
    yield starter
    starter.stop_all()
