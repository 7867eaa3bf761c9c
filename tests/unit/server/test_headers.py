"""Headers over FERRY_MAX_HEADER_BYTES answer 431 before any other work (auth included), in
each protocol's error shape; /readyz names loaded models only to a caller with a read key."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.config.settings import Settings
from ferry.model import load
from ferry.security.keys import KeyStore
from ferry.server.app import Features, create_app
from ferry.server.auth import AuthMiddleware, Security
from ferry.server.headers import HeaderLimit
from ferry.server.state import ferry_state

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture
def secured(tmp_path: Path, iris_bundle: Path) -> Iterator[tuple[TestClient, Security]]:
    settings = Settings(home=tmp_path, auth="required", max_header_bytes=4096)
    app = create_app(settings, [load(iris_bundle)], Features(security=True))
    security = ferry_state(app).security
    assert security is not None
    assert [m.cls for m in app.user_middleware][:2] == [HeaderLimit, AuthMiddleware]
    with TestClient(app) as client:
        yield client, security
    security.close()


def test_oversized_headers_answer_431_before_auth(secured: tuple[TestClient, Security]) -> None:
    client, security = secured
    big = {"x-api-key": "fry_0123456789abcdef_" + "x" * 5000}
    answer = client.post("/v1/models/iris/predict", json=BODY, headers=big)
    assert answer.status_code == 431
    assert answer.json()["error"]["code"] == "headers_too_large"
    assert answer.json()["error"]["details"]["limit"] == 4096
    assert answer.headers["connection"] == "close"
    assert len(security.authenticator.failures) == 0  # auth never saw it
    v2 = client.post("/v2/models/iris/infer", json={}, headers={"x-padding": "p" * 5000})
    assert v2.status_code == 431
    assert "FERRY_MAX_HEADER_BYTES" in v2.json()["error"]
    assert client.get("/readyz", headers={"x-padding": "p" * 5000}).status_code == 431
    metrics = security.metrics
    assert metrics is not None
    assert metrics.errors.labels("headers_too_large")._value.get() == 3  # noqa: SLF001


def test_long_credentials_under_the_header_limit_are_401_and_not_cached(
    tmp_path: Path, iris_bundle: Path
) -> None:
    settings = Settings(home=tmp_path, auth="required", max_header_bytes=64 * 1024)
    app = create_app(settings, [load(iris_bundle)], Features(security=True))
    security = ferry_state(app).security
    assert security is not None
    with TestClient(app) as client:
        answer = client.post(
            "/v1/models/iris/predict", json=BODY, headers={"x-api-key": "k" * 20_000}
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["details"]["reason"] == "oversized"
    assert len(security.authenticator.failures) == 0
    security.close()


def test_readyz_names_models_only_to_a_read_key(
    secured: tuple[TestClient, Security], tmp_path: Path
) -> None:
    client, _ = secured
    store = KeyStore.from_settings(Settings(home=tmp_path))
    reader = store.create("ops", ["read"]).token
    predictor = store.create("app", ["predict:iris"]).token
    store.database.close()
    assert client.get("/readyz").json() == {"ready": True}  # probes need no key
    assert client.get("/readyz", headers={"x-api-key": "fry_bad"}).json() == {"ready": True}
    assert client.get("/readyz", headers={"x-api-key": predictor}).json() == {"ready": True}
    detailed = client.get("/readyz", headers={"x-api-key": reader}).json()
    assert detailed["ready"] is True
    assert [name.split(":")[0] for name in detailed["models"]] == ["iris"]


def test_without_auth_readyz_keeps_its_detail(iris_bundle: Path, tmp_path: Path) -> None:
    with TestClient(create_app(Settings(home=tmp_path), [load(iris_bundle)])) as client:
        body = client.get("/readyz").json()
        assert body["ready"] is True
        assert body["models"]
        assert client.get("/healthz", headers={"x-big": "b" * 20_000}).status_code == 431
