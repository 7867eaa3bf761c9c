"""Trusted uploaded code on a real ``ferry server`` and ``ferry serve``: it loads and answers,
but the inspector and the model process see no secret, reach no port, inherit no socket, stay
within their memory limit, and die with the server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ferry.model import save
from tests.integration.conftest import platform_server, served, start_ferry
from tests.sandbox_models import BOMB, SNOOP, frame_rows, iris_example, write_predictor

pytestmark = pytest.mark.integration

SLOW = """
import time


class Slow:
    def load(self, model_dir):
        time.sleep(60)

    def predict(self, frame):
        return [0] * len(frame)
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "auth.secret").write_text("f" * 64 + "\n")
    return home


def secret_env(home: Path) -> dict[str, str]:
    return {
        "FERRY_JWT_SECRET": "jwt-secret-value-for-the-test",
        "FERRY_DATABASE_URL": f"sqlite:///{home / 'ferry.db'}",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-for-the-test",
        "FERRY_AUTH": "off",
    }


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(0.2)
        yield sock
    # nothing sandboxed connected to it


def upload(base_url: str, name: str, source: Path, example: Path) -> httpx.Response:
    files = [
        ("metadata", (None, orjson.dumps({"entrypoint": f"{source.name}:{name.title()}"}))),
        ("code", (source.name, source.read_bytes())),
        ("example", ("example.csv", example.read_bytes())),
        ("trust", (None, b"true")),
    ]
    return httpx.post(f"{base_url}/api/v1/models/{name}/versions", files=files, timeout=120)


def predict(base_url: str, name: str) -> httpx.Response:
    rows = frame_rows(2).to_dict("records")
    return httpx.post(f"{base_url}/v1/models/{name}/predict", json={"instances": rows}, timeout=60)


def test_trusted_snoop_loads_but_reaches_nothing(
    home: Path, tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    source = write_predictor(
        tmp_path / "snoop",
        SNOOP,
        secret_file=str(home / "auth.secret"),
        port=port,
        strict=True,
    )
    with platform_server(home, log=tmp_path / "server.log", env=secret_env(home)) as base_url:
        # the inspector ran load() strictly: a reached secret or port would be a 422
        created = upload(base_url, "snoop", source, iris_example(tmp_path))
        assert created.status_code == 201, created.text
        answer = predict(base_url, "snoop")
        assert answer.status_code == 200, answer.text
        # in the worker's model process too: only a port of its own network namespace
        assert answer.json()["predictions"] == ["net:bind/net:bind"] * 2
    with pytest.raises(TimeoutError):
        listener.accept()


def test_memory_bomb_is_stopped_by_the_limit(home: Path, tmp_path: Path) -> None:
    source = write_predictor(tmp_path / "bomb", BOMB)
    env = {**secret_env(home), "FERRY_SANDBOX_MEMORY_MB": "1024"}
    with platform_server(home, log=tmp_path / "server.log", env=env) as base_url:
        refused = upload(base_url, "bomb", source, iris_example(tmp_path))
        assert refused.status_code == 422, refused.text
        assert "ran out of memory" in refused.json()["error"]["message"]
        assert "1024 MB" in refused.json()["error"]["message"]
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("workers", [1, 2])
def test_inspector_holds_no_socket_and_dies_with_the_server(
    home: Path, tmp_path: Path, workers: int
) -> None:
    source = write_predictor(tmp_path / "slow", SLOW)
    process, base_url = start_ferry(
        ["server", "--workers", str(workers)],
        log=tmp_path / "server.log",
        env={"FERRY_HOME": str(home), **secret_env(home)},
    )
    try:
        sender = threading.Thread(
            target=lambda: _quietly(upload, base_url, "slow", source, iris_example(tmp_path)),
            daemon=True,
        )
        sender.start()
        inspector = _wait_for(lambda: _inspector_pids(home), 30)
        assert inspector
        listening = _listening_inodes(int(base_url.rsplit(":", 1)[1]))
        assert listening  # the server's own socket is seen this way
        for pid in inspector:  # type: ignore[attr-defined]
            # its pipes to the server are socket pairs; the listening socket is not among them
            assert not listening & _socket_inodes(pid)
        # the worker that started it (with one worker: the server itself), then the supervisor
        for pid in {_parent(_parent(_parent(p))) for p in inspector}:  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert _wait_for(lambda: not _inspector_pids(home), 2), "the inspector outlived it"
    finally:
        process.kill()
        process.wait()


def test_ferry_serve_runs_a_code_bundle_in_the_sandbox(
    home: Path, tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listener.getsockname()[1]
    source = write_predictor(
        tmp_path / "snoop", SNOOP, secret_file=str(home / "auth.secret"), port=port
    )
    bundle = tmp_path / "bundle"
    save(f"{source}:Snoop", bundle, example=iris_example(tmp_path), name="snoop")
    for key, value in {**secret_env(home), "FERRY_HOME": str(home)}.items():
        monkeypatch.setenv(key, value)
    with served(bundle, "--trust", "--workers", "2", log=tmp_path / "serve.log") as base_url:
        answer = predict(base_url, "snoop")
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == ["net:bind/net:bind"] * 2


def _quietly(*args: object) -> None:
    fn, *rest = args
    with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
        fn(*rest)  # type: ignore[operator]


def _wait_for(check: object, seconds: float) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.05)
    return check()  # type: ignore[operator]


def _inspector_pids(home: Path) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_python = bool(cmdline) and b"bwrap" not in cmdline[0] and b"prlimit" not in cmdline[0]
        mine = any(str(home).encode() in part for part in cmdline)
        if is_python and mine and b"ferry.server.control.inspector" in cmdline:
            found.append(int(pid))
    return found


def _parent(pid: int) -> int:
    """The parent of ``pid`` (the inspector's chain: worker > prlimit/bwrap > bwrap > python)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise LookupError(pid)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


FLAKY = """
import os
import numpy as np


class Flaky:
    def predict(self, frame):
        if float(frame.iloc[0, 0]) > 100:
            os._exit(3)
        return np.zeros(len(frame), dtype=int)
"""


def test_serving_bomb_and_crash_answer_5xx_and_the_server_stays(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.registry import Registry

    monkeypatch.setenv("FERRY_TEST_DISARMED", "1")  # saved here; armed in the sandbox
    bomb = tmp_path / "bomb-bundle"
    save(f"{write_predictor(tmp_path / 'bomb', BOMB)}:Bomb", bomb, example=iris_example(tmp_path))
    monkeypatch.delenv("FERRY_TEST_DISARMED")
    flaky = tmp_path / "flaky-bundle"
    source = write_predictor(tmp_path / "flaky", FLAKY)
    save(f"{source}:Flaky", flaky, example=iris_example(tmp_path))
    # registered behind the inspector's back: the workers' model processes are the last line
    with Registry.open(f"sqlite:///{home / 'ferry.db'}", str(home / "artifacts")) as registry:
        registry.register(bomb, "bomb")
        registry.register(flaky, "flaky")
    env = {**secret_env(home), "FERRY_SANDBOX_MEMORY_MB": "1024"}
    with platform_server(home, "--workers", "1", log=tmp_path / "server.log", env=env) as url:
        refused = predict(url, "bomb")
        assert refused.status_code == 500, refused.text
        assert refused.json()["error"]["code"] == "model_load_failed"
        # a 5xx says what failed and where the log has it, never the model process's own text
        message = refused.json()["error"]["message"]
        assert message.startswith("the model failed to load; the server's log has the cause")
        assert "MemoryError" not in refused.text
        assert "MemoryError: the model process has 1024 MB" in (tmp_path / "server.log").read_text()
        assert predict(url, "flaky").status_code == 200
        rows = frame_rows(2).to_dict("records")
        rows[0]["sepal length (cm)"] = 500.0
        crashed = httpx.post(f"{url}/v1/models/flaky/predict", json={"instances": rows}, timeout=60)
        assert crashed.status_code == 500, crashed.text
        error = crashed.json()["error"]
        assert error["code"] == "model_crashed"
        assert error["message"].startswith(
            "the model's process stopped while predicting; it starts again on the next request"
        )
        again = predict(url, "flaky")  # a new model process
        assert again.status_code == 200, again.text
        assert again.json()["predictions"] == [0, 0]
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
