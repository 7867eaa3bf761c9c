"""Slow and idle clients against a real ``ferry serve``: 3,000 of them (idle, headers a byte
a second, a body a byte a second) are answered 408 and closed by their deadlines while a
normal request still answers within 1 s; past the connection cap a client gets a 503 in
Ferry's error shape; a client that leaves mid-request is no error in the log."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.conftest import start_server, stop_server

pytestmark = pytest.mark.integration

DEADLINE = 2.0  # FERRY_HEADER_TIMEOUT_SECONDS and FERRY_BODY_TIMEOUT_SECONDS for these servers
SLACK = 4.0  # how late a close may be seen here: 1.1-3.2 s late at a load of 12 on 2 cores
PER_KIND = 1000
ROW = {
    "sepal_length": 5.1,
    "sepal_width": 3.5,
    "petal_length": 1.4,
    "petal_width": 0.2,
}


@pytest.fixture(scope="module")
def slow_server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("slow") / "serve.log"
    env = {
        "FERRY_HEADER_TIMEOUT_SECONDS": str(DEADLINE),
        "FERRY_BODY_TIMEOUT_SECONDS": str(DEADLINE),
    }
    process, base_url = start_server(iris_bundle, "--workers", "1", log=log, env=env)
    try:
        _probe(base_url)  # warm: the first prediction of a fresh process is not the point
        yield base_url
    finally:
        stop_server(process)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]  # disconnects and timeouts are no errors
    assert " ERROR " not in text, text[-3000:]


def _raise_own_descriptor_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed * 2), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= needed


class Slow:
    """One slow client: what it sends, a byte a second after ``head``, and what it saw."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        self.port = port
        self.answer = b""
        self.opened = 0.0
        self.closed_after = float("inf")

    async def run(self, stop: asyncio.Event) -> None:
        self.opened = time.monotonic()  # before: the server's clock starts at its accept
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        trickle = b""
        if self.kind == "headers":
            trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 64
        elif self.kind == "body":
            writer.write(
                b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
            )
            trickle = b'{"instances": [' + b" " * 4000
        sender = asyncio.create_task(self._trickle(writer, trickle, stop))
        try:  # until the server closes; a reset (a byte sent as it closed) keeps what came
            while chunk := await reader.read(65536):
                self.answer += chunk
        except ConnectionError:
            pass
        finally:
            self.closed_after = time.monotonic() - self.opened
            sender.cancel()
            writer.close()

    @staticmethod
    async def _trickle(writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event) -> None:
        for byte in data:
            if stop.is_set():
                return
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(1.0)


def _probe(base_url: str) -> float:
    """Seconds a normal prediction takes on a new connection (in a thread during the siege:
    the test's own event loop, busy with 3,000 sockets, is not what is measured)."""
    started = time.monotonic()
    response = httpx.post(f"{base_url}/v1/models/iris/predict", json={"instances": [ROW]})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1
    return time.monotonic() - started


async def _siege(base_url: str) -> tuple[list[Slow], list[float]]:
    port = int(base_url.rsplit(":", 1)[1])
    stop = asyncio.Event()
    clients = [Slow(kind, port) for kind in ("idle", "headers", "body") for _ in range(PER_KIND)]
    tasks = [asyncio.create_task(client.run(stop)) for client in clients]
    await asyncio.sleep(0.5 * DEADLINE)  # all connected and trickling, none closed yet
    assert not any(task.done() for task in tasks), "slow clients closed before the deadline"
    probes = [await asyncio.to_thread(_probe, base_url) for _ in range(5)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 2 * DEADLINE + 3 * SLACK)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return clients, probes


def test_slow_clients_are_closed_by_their_deadline_and_normal_requests_answer(
    slow_server: str,
) -> None:
    _raise_own_descriptor_limit(3 * PER_KIND + 1000)
    started = time.monotonic()
    clients, probes = asyncio.run(_siege(slow_server))

    assert max(probes) < 1.0, probes
    closes = sorted(client.closed_after for client in clients)
    spread = [round(closes[int(q * (len(closes) - 1))], 2) for q in (0, 0.5, 0.9, 0.99, 1)]
    latest = {
        c.kind: round(max(d.closed_after for d in clients if d.kind == c.kind), 2) for c in clients
    }
    print(f"closed after (min, median, p90, p99, max): {spread}, latest {latest}")  # noqa: T201
    print(f"probes: {probes}")  # noqa: T201
    for client in clients:
        # idle and slow-header ones: the header deadline from the connection's opening;
        # slow bodies: one body window after their headers (sent at once) at most
        assert DEADLINE - 0.5 < client.closed_after < DEADLINE + SLACK, (client.kind, spread)
        head, _, body = client.answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), (client.kind, client.answer[:200])
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 30
    # nothing held after them: a normal request on a fresh connection still answers
    assert _probe(slow_server) < 1.0


def test_an_idle_kept_alive_connection_is_closed(slow_server: str) -> None:
    host, port = slow_server.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'"ok"' not in answer:
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert sock.recv(4096) == b""  # uvicorn's timeout_keep_alive (5 s) closes it quietly
        assert time.monotonic() - started < 5 + SLACK


def test_a_client_leaving_mid_body_is_no_error(slow_server: str) -> None:
    host, port = slow_server.removeprefix("http://").rsplit(":", 1)
    for _ in range(20):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"instances": ['
            )
            time.sleep(0.05)
    # the fixture's teardown reads the log: no ERROR, no traceback
    assert _probe(slow_server) < 1.0


def test_past_the_connection_cap_a_client_gets_503(iris_bundle: Path, tmp_path: Path) -> None:
    cap = 20
    env = {"FERRY_MAX_CONNECTIONS": str(cap), "FERRY_HEADER_TIMEOUT_SECONDS": "30"}
    process, base_url = start_server(
        iris_bundle, "--workers", "1", log=tmp_path / "serve.log", env=env
    )
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(cap)]
    try:
        time.sleep(0.3)  # the worker accepted them all
        refused = httpx.post(f"{base_url}/v1/models/iris/predict", json={"instances": [ROW]})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "too_many_connections"
        assert refused.json()["error"]["details"] == {"max_connections": cap}
        for sock in held:
            sock.close()
        held = []
        time.sleep(0.3)
        answered = httpx.post(f"{base_url}/v1/models/iris/predict", json={"instances": [ROW]})
        assert answered.status_code == 200, answered.text
    finally:
        for sock in held:
            sock.close()
        stop_server(process)
    assert "at its cap of 20 connections" in (tmp_path / "serve.log").read_text()


def test_a_body_slow_but_above_the_minimum_rate_is_answered(slow_server: str) -> None:
    # 12 KB at about 2 KB/s: three body windows, each well above 500 bytes/s
    body = orjson.dumps({"instances": [ROW]}) + b" " * 12_000
    host, port = slow_server.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for start in range(0, len(body), 400):
            sock.sendall(body[start : start + 400])
            time.sleep(0.2)
        answer = b""
        while b"predictions" not in answer:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_a_later_request_on_a_kept_alive_connection_has_its_header_deadline(
    slow_server: str,
) -> None:
    host, port = slow_server.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'"ok"' not in answer:
            answer += sock.recv(4096)
        time.sleep(DEADLINE + 0.5)  # past the first request's deadline, within keep-alive
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no more
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert DEADLINE - 0.5 < waited < DEADLINE + SLACK, waited
