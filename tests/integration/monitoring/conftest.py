"""A real HTTP receiver for alert webhooks, and the control-plane server fixtures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.integration.conftest import free_port
from tests.integration.control.conftest import control_server, start_control

__all__ = ["Receiver", "control_server", "get", "patch", "post", "receiver", "start_control"]


@dataclass
class Receiver:
    url: str
    answers: list[int]  # status per attempt; the last repeats
    bodies: list[dict[str, object]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds each POST takes before it is recorded and answered


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", answers=[200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            time.sleep(state.delay)
            state.bodies.append(body)
            state.keys.append(self.headers["Idempotency-Key"])
            index = min(len(state.bodies), len(state.answers)) - 1
            self.send_response(state.answers[index])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ferry"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# generous: on a loaded machine the first prediction of a version also loads the model
TIMEOUT = 60.0


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, timeout=TIMEOUT, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.patch(url, timeout=TIMEOUT, **kwargs)
