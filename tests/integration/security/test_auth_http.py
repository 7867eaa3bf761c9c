"""``ferry server --auth``: every protocol refuses missing, invalid, expired and revoked keys
(401), keys without the scope or for another model (403); keys with the scope work from curl-like
HTTP, ``ferry.client`` and the CLI; public models answer without a key; failures and writes are
in the audit log."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ferry.client import Client
from ferry.errors import Forbidden, Unauthorized
from ferry.ids import ANONYMOUS
from ferry.registry import Registry
from tests.conftest import IRIS_COLUMNS
from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
PREDICT = {
    "native": ("/v1/models/{m}/predict", {"instances": ROWS}),
    "v2": (
        "/v2/models/{m}/infer",
        {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]},
    ),
    "mlflow": ("/mlflow/{m}/invocations", {"instances": ROWS}),
}


def post(url: str, protocol: str, model: str, key: str | None = None) -> httpx.Response:
    path, body = PREDICT[protocol]
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + path.format(m=model), json=body, headers=headers, timeout=30)


@pytest.fixture
def server(home: Home, start_server: StartServer) -> str:
    return start_server(home, "--auth", "--workers", "1", FERRY_AUTH_CACHE_SECONDS="1")


@pytest.mark.parametrize("protocol", ["native", "v2", "mlflow"])
def test_missing_and_invalid_keys_are_401_in_each_protocols_shape(
    server: str, protocol: str
) -> None:
    missing = post(server, protocol, "iris")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="ferry"'
    invalid = post(server, protocol, "iris", key="fry_0123456789abcdef_" + "x" * 43)
    assert invalid.status_code == 401
    assert 'error="invalid_token"' in invalid.headers["www-authenticate"]
    body = invalid.json()
    if protocol == "native":
        assert body["error"]["code"] == "unauthorized"
    elif protocol == "v2":
        assert body == {"error": "invalid API key"}
    else:
        assert body["error_code"] == "UNAUTHENTICATED"
    assert post(server, protocol, "iris", key="not-a-key-at-all").status_code == 401


def test_expired_and_revoked_keys(home: Home, server: str) -> None:
    short = home.key("short", "predict:iris", expires=timedelta(seconds=2))
    revoked = home.key("leaving", "predict:iris")
    assert post(server, "native", "iris", short).status_code == 200
    assert post(server, "native", "iris", revoked).status_code == 200
    cli = home.ferry("keys", "revoke", "leaving")
    assert cli.returncode == 0, cli.stderr
    assert "revoked key" in cli.stdout
    time.sleep(2.2)  # past the key's expiry and the server's 1 s credential cache
    for key, reason in ((short, "expired"), (revoked, "revoked")):
        answer = post(server, "native", "iris", key)
        assert answer.status_code == 401
        assert answer.json()["error"]["details"]["reason"] == reason


def test_scopes_and_models_are_403(home: Home, server: str) -> None:
    key = home.key("ci", "predict:iris")
    assert post(server, "native", "iris", key).status_code == 200
    for protocol in PREDICT:
        other = post(server, protocol, "open-not-mine", key)
        assert other.status_code == 403, protocol
    auth = {"x-api-key": key}  # the other header form
    listing = httpx.get(f"{server}/api/v1/models", headers=auth)
    assert listing.status_code == 403
    assert listing.json()["error"]["details"]["required"] == "read"
    delete = httpx.delete(f"{server}/api/v1/models/iris", headers=auth)
    assert delete.status_code == 403
    assert httpx.get(f"{server}/api/v1/keys", headers=auth).status_code == 403
    assert httpx.get(f"{server}/metrics", headers=auth).status_code == 403
    reader = home.key("reader", "read:iris")
    assert httpx.get(f"{server}/api/v1/models/iris", headers={"x-api-key": reader}).is_success
    assert post(server, "native", "iris", reader).status_code == 403  # read is not predict
    publisher = home.key("pub", "publish:ir*")
    patch = httpx.patch(
        f"{server}/api/v1/models/iris",
        json={"description": "changed by pub"},
        headers={"x-api-key": publisher},
    )
    assert patch.status_code == 200
    with Client(server, api_key=publisher) as client:
        assert client.registered_model("iris").description == "changed by pub"
        with pytest.raises(Forbidden):
            client.delete_model("open")


def test_predictions_through_client_and_cli(
    home: Home, server: str, iris_model: LogisticRegression
) -> None:
    key = home.key("ci", "predict:iris", "read:iris")
    with Client(server, api_key=key) as client:
        answer = client.predict("iris", ROWS)
    with Client(server) as anonymous, pytest.raises(Unauthorized):
        anonymous.predict("iris", ROWS)
    direct = post(server, "native", "iris", key).json()["predictions"]
    assert answer["predictions"] == direct
    assert direct == iris_model.predict(pd.DataFrame(ROWS, columns=IRIS_COLUMNS)).tolist()
    cli = home.ferry("--api-key", key, "versions", "ls", "iris", "--url", server)
    env_cli = home.ferry("versions", "ls", "iris", "--url", server, FERRY_API_KEY=key)
    refused = home.ferry("versions", "ls", "iris", "--url", server)
    assert cli.returncode == 0, cli.stderr
    assert env_cli.returncode == 0, env_cli.stderr
    assert "sklearn" in cli.stdout
    assert refused.returncode == 1
    assert "unauthorized" in refused.stderr


def test_public_model_and_open_probes(home: Home, server: str) -> None:
    deadline = time.monotonic() + 10  # the public set is re-read every 2 s
    while post(server, "native", "open").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    for protocol in PREDICT:
        assert post(server, protocol, "open").status_code == 200, protocol
        assert post(server, protocol, "iris").status_code == 401, protocol
    assert httpx.get(f"{server}/api/v1/models/open").status_code == 401  # predict only
    for path in ("/healthz", "/readyz", "/v2/health/ready", "/ping", "/openapi.json"):
        assert httpx.get(server + path).status_code == 200, path
    assert httpx.get(f"{server}/metrics").status_code == 401


def test_admin_api_and_audit_log(home: Home, server: str, start_server: StartServer) -> None:
    admin = {"authorization": f"Bearer {home.key('root', 'admin')}"}
    created = httpx.post(
        f"{server}/api/v1/keys",
        json={"name": "made-by-api", "scopes": ["predict:iris"], "expires": "1d"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    new_key = created.json()["key"]
    assert post(server, "native", "iris", new_key).status_code == 200
    listed = httpx.get(f"{server}/api/v1/keys", headers=admin).json()["items"]
    assert {k["name"] for k in listed} == {"root", "made-by-api"}
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    bad = httpx.post(f"{server}/api/v1/keys", json={"name": "x", "scopes": ["fly"]}, headers=admin)
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["field"] == "scope"
    revoked = httpx.delete(f"{server}/api/v1/keys/{created.json()['id']}", headers=admin)
    assert revoked.json()["items"][0]["status"] == "revoked"
    post(server, "native", "iris", "fry_0123456789abcdef_" + "y" * 43)
    time.sleep(1.5)  # audit rows are written by a background thread
    events = httpx.get(f"{server}/api/v1/audit", params={"limit": 50}, headers=admin).json()
    actions = [(e["action"], e["target"]) for e in events["items"]]
    assert ("http.write", "POST /api/v1/keys") in actions
    assert ("key.create", f"key {created.json()['id']}") in actions
    writes = [e for e in events["items"] if e["target"] == "POST /api/v1/keys"]
    assert [w["details"]["status"] for w in writes] == [400, 201]  # newest first
    assert writes[-1]["details"]["name"] == "root"
    assert writes[-1]["actor"] != ANONYMOUS
    # refusals are aggregated per minute, key id and client (issue 13: one row per 401 let
    # unauthenticated traffic fill the log), written when the minute ends or at shutdown
    start_server.stop(server)  # SIGTERM: the worker writes its counts on the way out
    with Registry.from_settings(home.settings(), migrate=False) as registry:
        failures = [e for e in registry.audit(limit=50) if e.action == "auth.unauthorized"]
    [failure] = failures
    assert failure.target == "POST /v1/models/iris/predict"
    assert failure.details["client"] == "127.0.0.1"
    assert failure.details["count"] == 1
    assert failure.actor == "0123456789abcdef"  # the key id the credentials named


def test_only_the_trust_scope_may_upload_with_trust(
    home: Home, server: str, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    """trust=true overrides the pickle scanner and lets code run, so a publish key may not
    send it: it needs the trust scope (which admin implies)."""
    model_file = tmp_path / "iris.joblib"
    joblib.dump(iris_model, model_file, compress=3)  # different bytes: a new version
    publisher = home.key("pub", "publish:iris")
    with Client(server, api_key=publisher) as client:
        with pytest.raises(Forbidden) as refused:
            client.register(model_file, "iris", trust=True)
        assert refused.value.details["field"] == "trust"
        assert refused.value.details["required"] == "trust:iris"
        assert [v.version for v in client.versions("iris").items] == [1]
        assert client.register(model_file, "iris").version == 2  # no trust: publish is enough
    admin = home.key("root", "admin:iris")
    with Client(server, api_key=admin) as client:
        trusted = client.register(model_file, "iris", trust=True)
        assert trusted.version == 2  # same content: the same version, now by an admin
