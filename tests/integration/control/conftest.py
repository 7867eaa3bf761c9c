"""A real uvicorn process serving the control plane over a registry in a temporary home."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 60.0
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"the control plane did not start in {STARTUP_SECONDS} s:\n{log.read_text()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def start_control(tmp_path: Path) -> Iterator[StartControl]:
    """Start uvicorn on the app factory over a fresh FERRY_HOME; stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> ControlServer:
        home = tmp_path / f"home-{len(started)}"
        log = tmp_path / f"control-{len(started)}.log"
        port = _free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.integration.control.app_factory:create",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        inherited = {k: v for k, v in os.environ.items() if k not in ISOLATED}
        environment = {**inherited, "FERRY_HOME": str(home), "PYTHONPATH": str(REPO), **env}
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - uvicorn from the venv
                command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=REPO
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log)
        return ControlServer(url, home, log)

    yield start
    for process in started:
        _stop(process)


@pytest.fixture
def control_server(start_control: StartControl) -> ControlServer:
    return start_control()
