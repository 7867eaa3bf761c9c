"""A real ``ferry server`` serving the control plane over a registry in a temporary home."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import start_ferry, stop_server

REPO = Path(__file__).resolve().parents[3]
ISOLATED = ("FERRY_DATABASE_URL", "FERRY_ARTIFACTS", "FERRY_S3_ENDPOINT_URL", "FERRY_URL")


@dataclass(frozen=True)
class ControlServer:
    url: str
    home: Path
    log: Path

    def ferry(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the ``ferry`` CLI against this server (FERRY_URL), as a user would."""
        env = {**os.environ, "FERRY_URL": self.url, "COLUMNS": "200", "NO_COLOR": "1"}
        return subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=300,
            check=False,
        )


StartControl = Callable[..., ControlServer]


@pytest.fixture
def start_control(tmp_path: Path) -> Iterator[StartControl]:
    """Start uvicorn on the app factory over a fresh FERRY_HOME; stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> ControlServer:
        home = tmp_path / f"home-{len(started)}"
        log = tmp_path / f"control-{len(started)}.log"
        inherited = {k: v for k, v in os.environ.items() if k not in ISOLATED}
        process, url = start_ferry(
            ["server", "--workers", "1"],
            log=log,
            env={**inherited, "FERRY_HOME": str(home), **env},
        )
        started.append(process)
        return ControlServer(url, home, log)

    yield start
    for process in started:
        stop_server(process)


@pytest.fixture
def control_server(start_control: StartControl) -> ControlServer:
    return start_control()
