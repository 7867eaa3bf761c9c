"""The auth middleware in process: credential headers, and WebSockets get no bypass."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ferry.config.settings import Settings
from ferry.security.identity import principal_id
from ferry.security.keys import KeyStore
from ferry.security.scopes import Action
from ferry.server.auth import AuthMiddleware, Security, credentials
from ferry.server.routes import RouteTable, need

with warnings.catch_warnings():
    # Starlette 1.x nudges TestClient users towards httpx2; httpx is what Ferry's client uses
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"authorization", b"Bearer abc")], "abc"),
        ([(b"authorization", b"bearer  abc ")], "abc"),
        ([(b"x-api-key", b"k1")], "k1"),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([], None),
    ],
)
def test_credentials(headers: list[tuple[bytes, bytes]], token: str | None) -> None:
    assert credentials({"headers": headers}) == token


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[TestClient, KeyStore]]:
    settings = Settings(home=tmp_path, auth="required")
    store = KeyStore.from_settings(settings)
    store.database.migrate()

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(principal_id(websocket.scope)))
        await websocket.close()

    # a route that speaks WebSocket gets the access of its GET in the route table
    table = RouteTable()
    table.add("/v1/models/{name}/stream", echo, "GET", need(Action.READ, Action.PREDICT, on="name"))
    security = Security.from_settings(settings, table)
    app = Starlette(routes=[WebSocketRoute("/v1/models/iris/stream", echo)])
    wrapped = AuthMiddleware(app, security)
    with TestClient(wrapped) as client:  # type: ignore[arg-type]
        yield client, store
    security.close()
    store.database.close()


def test_websockets_follow_the_get_rules(secured: tuple[TestClient, KeyStore]) -> None:
    client, store = secured
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/v1/models/iris/stream"),
    ):
        pass
    assert refused.value.code == 1008
    other = store.create("wine", ["predict:wine"]).token
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/v1/models/iris/stream", headers={"x-api-key": other}),
    ):
        pass
    new = store.create("ci", ["read:iris"])
    with client.websocket_connect(
        "/v1/models/iris/stream", headers={"x-api-key": new.token}
    ) as socket:
        assert socket.receive_text() == new.record.id


def test_unreachable_quota_counters_fail_closed(tmp_path: Path) -> None:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    settings = Settings(home=tmp_path, auth="required", redis_url="redis://127.0.0.1:1/0")
    store = KeyStore.from_settings(settings)
    store.database.migrate()
    limited = store.create("ci", ["predict"], requests_per_minute=5).token
    free = store.create("free", ["predict"]).token

    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    table = RouteTable()
    table.add("/v1/models/{name}/predict", ok, "POST", need(Action.PREDICT, on="name"))
    security = Security.from_settings(settings, table)
    app = Starlette(routes=[Route("/v1/models/iris/predict", ok, methods=["POST"])])
    try:
        with TestClient(AuthMiddleware(app, security)) as client:  # type: ignore[arg-type]
            path = "/v1/models/iris/predict"
            refused = client.post(path, headers={"x-api-key": limited})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "not_ready"
            assert client.post(path, headers={"x-api-key": free}).text == "ok"
    finally:
        security.close()
        store.database.close()
