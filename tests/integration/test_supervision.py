"""Supervision against a real ``ferry serve --workers 2``: SIGKILL of the supervisor stops
every worker within 2 s and a new server binds the same port at once; in every server
process the listening socket is close-on-exec, so no program a worker starts (the
inspector) can hold the port after the server is gone; and the open-file limit is raised to
the hard limit at start."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ferry.client import Client
from tests.integration.conftest import free_port, stop_server, wait_ready

pytestmark = pytest.mark.integration

O_CLOEXEC = 0o2000000
LOW_SOFT_LIMIT = 1024
TCP_LISTEN = "0A"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _lower_descriptor_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(LOW_SOFT_LIMIT, hard), hard))


def _serve_on(port: int, bundle: Path, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """``ferry serve`` on ``port``, started with a low open-file soft limit."""
    command = [sys.executable, "-m", "ferry", "serve", str(bundle), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [*command, "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_lower_descriptor_limit,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
    except BaseException:
        stop_server(process)
        raise
    return process


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def _running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie holds no socket


def _children(parent: int) -> list[int]:
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    return [pid for pid in pids if (stat := _stat(pid)) is not None and stat[1] == parent]


def _predict(port: int) -> int:
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/models/iris/predict", json={"instances": [ROW]}, timeout=10
    )
    return response.status_code


def test_killed_supervisor_takes_its_workers_and_the_port_binds_at_once(
    iris_bundle: Path, tmp_path: Path
) -> None:
    port = free_port()
    supervisor = _serve_on(port, iris_bundle, 2, tmp_path / "first.log")
    workers = [pid for pid in _children(supervisor.pid) if _running(pid)]
    assert len(workers) == 2, workers
    assert _predict(port) == 200

    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait()
    killed = time.monotonic()
    while any(_running(pid) for pid in workers) and time.monotonic() - killed < 2.0:
        time.sleep(0.02)
    print(f"workers gone {time.monotonic() - killed:.3f} s after the SIGKILL")  # noqa: T201
    left = [pid for pid in workers if _running(pid)]
    for pid in left:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers still running 2 s after the supervisor's SIGKILL: {left}"

    again = _serve_on(port, iris_bundle, 2, tmp_path / "second.log")  # would exit: in use
    try:
        assert _predict(port) == 200
        assert again.poll() is None  # it bound the port: not some survivor answering
    finally:
        stop_server(again)
    assert "Address already in use" not in (tmp_path / "second.log").read_text()


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == TCP_LISTEN:
                inodes.add(fields[9])
    return inodes


def _listening_fds(pid: int, inodes: set[str]) -> list[int]:
    fds = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            fds.append(int(name))
    return fds


def _open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for {pid}")


def _fd_flags(pid: int, fd: int) -> int:
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError(f"no flags for fd {fd} of {pid}")


@pytest.mark.parametrize("workers", [1, 2])
def test_no_program_a_server_starts_inherits_its_listening_socket(
    iris_bundle: Path, tmp_path: Path, workers: int
) -> None:
    port = free_port()
    server = _serve_on(port, iris_bundle, workers, tmp_path / "serve.log")
    try:
        inodes = _listening_inodes(port)
        assert inodes
        processes = [server.pid, *_children(server.pid)]
        assert len(processes) == (1 if workers == 1 else 1 + workers), processes
        held = {pid: _listening_fds(pid, inodes) for pid in processes}
        assert all(held.values()), held  # every worker serves on it (the supervisor holds it)
        for pid, fds in held.items():
            for fd in fds:
                assert _fd_flags(pid, fd) & O_CLOEXEC, f"fd {fd} of {pid} is inheritable"
            # started at 1024 open files: raised to the hard limit
            soft, hard = _open_file_limits(pid)
            assert soft == hard > LOW_SOFT_LIMIT, (soft, hard)
    finally:
        stop_server(server)


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        children = _children(frontier.pop())
        found += children
        frontier += children
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_killed_while_it_inspects_an_upload_leaves_the_port_free(
    iris_bundle: Path, tmp_path: Path, workers: int
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "ferry", "server", "--port", str(port)]
    log = tmp_path / "server.log"
    env = {**os.environ, "FERRY_HOME": str(tmp_path / "home")}
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 - our own CLI
            [*command, "--workers", str(workers)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, log)
    except BaseException:
        stop_server(server)
        raise
    serving = {server.pid, *_children(server.pid)}
    upload = threading.Thread(target=_register, args=(url, iris_bundle), daemon=True)
    upload.start()
    started = time.monotonic()
    inspectors: list[int] = []
    while not inspectors and time.monotonic() - started < 30:  # the inspector starts
        inspectors = [pid for pid in _descendants(server.pid) if pid not in serving]
        time.sleep(0.01)
    left = [*inspectors, *serving]
    try:
        assert inspectors, "no inspector process started for the upload"
        server.send_signal(signal.SIGKILL)  # while the inspector runs
        server.wait()
        # its workers follow by their parent-death signal, which takes a moment on a loaded
        # machine (one answered the new server's readiness probe, then died: CI, stop 25);
        # the inspectors are what this test is about and are not waited for
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in serving) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(pid) for pid in serving), "a worker outlived its supervisor"
        again = _serve_on(port, iris_bundle, 1, tmp_path / "again.log")  # would exit: in use
        try:
            assert _predict(port) == 200
            assert again.poll() is None  # it bound the port: not some survivor answering
        finally:
            stop_server(again)
    finally:
        for pid in left:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        upload.join(timeout=30)


def _register(url: str, bundle: Path) -> None:
    with contextlib.suppress(Exception), Client(url) as client:  # its server is killed
        client.register(bundle, "iris")
