"""Real ``ferry serve`` / ``ferry server`` processes on free loopback ports, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 60.0

ServeFactory = Callable[..., str]


def ferry_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``ferry`` command line in a subprocess, with ``env`` over this process's."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "ferry", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ferry serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"ferry serve was not ready after {STARTUP_SECONDS}s:\n{log.read_text()}")


def start_server(
    path: Path | str, *args: str, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ferry serve PATH [args]`` on a free port and wait until it is ready."""
    return start_ferry(["serve", str(path), *args], log=log, env=env)


def start_ferry(
    arguments: list[str], *, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ferry ARGUMENTS --port <free>`` and wait until /readyz answers 200."""
    port = free_port()
    command = [sys.executable, "-m", "ferry", *arguments, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process, log)
    except BaseException:
        stop_server(process)
        raise
    return process, base_url


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def platform_server(
    home: Path, *args: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A ``ferry server`` over the registry in ``home`` for one test."""
    process, base_url = start_ferry(
        ["server", *args], log=log, env={"FERRY_HOME": str(home), **(env or {})}
    )
    try:
        yield base_url
    finally:
        stop_server(process)


@contextmanager
def served(path: Path | str, *args: str, log: Path) -> Iterator[str]:
    """A server for one test: started, yielded as its base URL, stopped."""
    process, base_url = start_server(path, *args, log=log)
    try:
        yield base_url
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeFactory]:
    """Start ``ferry serve PATH [args]`` once per distinct command; returns its base URL."""
    started: dict[tuple[object, ...], tuple[subprocess.Popen[bytes], str]] = {}
    logs = tmp_path_factory.mktemp("serve-logs")

    def start(path: Path | str, *args: str, env: dict[str, str] | None = None) -> str:
        key = (str(path), *args, *sorted((env or {}).items()))
        if key in started:
            return started[key][1]
        process, base_url = start_server(
            path, *args, log=logs / f"serve-{len(started)}.log", env=env
        )
        started[key] = (process, base_url)
        return base_url

    yield start
    for process, _ in started.values():
        stop_server(process)
