"""The trust boundary against a real ``ferry server --auth``: a code model (a custom predictor,
an MLflow ``loader_module`` folder) is refused before any of its code runs unless the upload
says trust=true from a key holding the ``trust`` scope; a ``publish`` key can neither grant
trust nor make a code model public; a trusted model registers, loads and predicts, and the
decision (who, which key, which scope, what code) is in the audit log and the version's tags."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration
API = "/api/v1"
EXAMPLE = b"a,b\n1.0,2.0\n3.0,4.0\n"
ROWS = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]


def predictor(marker: Path) -> bytes:
    """A custom predictor whose load() writes ``marker``: the file appears iff it ran."""
    return textwrap.dedent(
        f"""
        from pathlib import Path


        class Model:
            def load(self, model_dir):
                try:  # trusted, it runs in the sandbox, as nobody: the test's folder is not its
                    Path({str(marker)!r}).write_text("predictor ran")
                except OSError:
                    pass

            def predict(self, frame):
                return (frame["a"] + frame["b"]).tolist()
        """
    ).encode()


def mlflow_folder(marker: Path) -> bytes:
    """An MLflow folder with no pickle at all: its python_function flavor imports
    ``code/evil_loader.py``, which writes ``marker`` as soon as it is imported."""
    mlmodel = textwrap.dedent(
        """
        flavors:
          python_function:
            loader_module: evil_loader
            code: code
        """
    )
    loader = textwrap.dedent(
        f"""
        from pathlib import Path

        try:  # trusted, it runs in the sandbox, as nobody: the test's folder is not its
            Path({str(marker)!r}).write_text("loader_module ran")
        except OSError:
            pass


        class _Model:
            def predict(self, model_input, params=None):
                return (model_input["a"] * model_input["b"]).tolist()


        def _load_pyfunc(path):
            return _Model()
        """
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (("MLmodel", mlmodel), ("code/evil_loader.py", loader)):
            data = text.encode()
            info = tarfile.TarInfo(f"evil_mlflow/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def custom_parts(marker: Path) -> list[tuple[str, Any]]:
    return [
        ("code", ("predictor.py", predictor(marker))),
        ("example", ("example.csv", EXAMPLE)),
        ("metadata", ("m.json", b'{"entrypoint": "predictor.py:Model"}', "application/json")),
    ]


def mlflow_parts(marker: Path) -> list[tuple[str, Any]]:
    return [
        ("model", ("evil_mlflow.tar.gz", mlflow_folder(marker))),
        ("example", ("example.csv", EXAMPLE)),
    ]


TRUST = ("trust", (None, b"true"))


def upload(url: str, key: str, name: str, parts: list[tuple[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{url}{API}/models/{name}/versions",
        files=parts,
        headers={"authorization": f"Bearer {key}"},
        timeout=180,
    )


def versions(url: str, key: str, name: str) -> list[int]:
    answer = httpx.get(f"{url}{API}/models/{name}/versions", headers=auth(key), timeout=10)
    if answer.status_code == 404:
        return []
    return [v["version"] for v in answer.json()["items"]]


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def predict(url: str, name: str, key: str | None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/{name}/predict",
        json={"instances": ROWS},
        headers=auth(key) if key else {},
        timeout=60,
    )


def trust_records(url: str, admin: str, target: str) -> list[dict[str, Any]]:
    """The version.create audit rows of ``target`` that carry a trust decision."""
    deadline = time.monotonic() + 10
    while True:
        events = httpx.get(f"{url}{API}/audit", params={"limit": 1000}, headers=auth(admin))
        assert events.status_code == 200, events.text
        found = [
            e
            for e in events.json()["items"]
            if e["action"] == "version.create"
            and e["target"] == target
            and "trusted" in e["details"]
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture
def server(home: Home, start_server: StartServer) -> str:
    return start_server(home, "--auth", "--workers", "1", FERRY_AUTH_CACHE_SECONDS="1")


@pytest.mark.parametrize("kind", ["custom", "mlflow"])
def test_a_publish_key_cannot_register_code_nor_grant_trust(
    home: Home, server: str, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / f"{kind}.ran"
    parts = custom_parts(marker) if kind == "custom" else mlflow_parts(marker)
    publisher = home.key("ci", "publish:team-*")
    name = f"team-{kind}"
    refused = upload(server, publisher, name, parts)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unsafe_model"
    assert error["details"]["field"] == "trust"
    assert error["details"]["required"] == f"trust:{name}"
    assert error["details"]["reasons"], error
    assert str(tmp_path) not in refused.text
    forbidden = upload(server, publisher, name, [*parts, TRUST])
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.json()["error"]["details"] == {"field": "trust", "required": f"trust:{name}"}
    assert versions(server, publisher, name) == []
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["custom", "mlflow"])
def test_trust_from_a_trust_key_registers_loads_predicts_and_is_audited(
    home: Home, server: str, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / f"{kind}.ran"
    parts = custom_parts(marker) if kind == "custom" else mlflow_parts(marker)
    admin = home.key("root", "admin")
    # an admin grants the trust scope through the keys API, as an operator would
    created = httpx.post(
        f"{server}{API}/keys",
        json={"name": "reviewer", "scopes": ["publish:team-*", "trust:team-*"]},
        headers=auth(admin),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    reviewer, reviewer_id = created.json()["key"], created.json()["id"]
    name = f"team-{kind}"
    without = upload(server, reviewer, name, parts)  # the scope alone is not the decision
    assert without.status_code == 422, without.text
    assert not marker.exists()
    trusted = upload(server, reviewer, name, [*parts, TRUST])
    assert trusted.status_code == 201, trusted.text
    version = trusted.json()
    assert version["tags"]["ferry.trusted_by"] == reviewer_id
    assert version["tags"]["ferry.code"]
    answer = predict(server, name, admin)
    assert answer.status_code == 200, answer.text
    expected = [3.0, 7.0] if kind == "custom" else [2.0, 12.0]
    assert answer.json()["predictions"] == expected
    [record] = trust_records(server, admin, f"{name}/1")
    assert record["actor"] == reviewer_id
    assert record["details"]["trust"] is True
    decision = record["details"]["trusted"]
    assert (decision["by"], decision["name"], decision["kind"]) == (reviewer_id, "reviewer", "key")
    assert decision["scope"] == "trust:team-*"
    assert decision["code"] == version["tags"]["ferry.code"].split("; ")
    assert decision["public"] is False
    # the server's record cannot be forged or dropped through the tags route
    forged = httpx.patch(
        f"{server}{API}/models/{name}/versions/1",
        json={"tags": {"ferry.trusted_by": "someone"}},
        headers=auth(reviewer),
        timeout=10,
    )
    assert forged.status_code == 400, forged.text
    replaced = httpx.patch(
        f"{server}{API}/models/{name}/versions/1",
        json={"tags": {"team": "ds"}, "replace": True},
        headers=auth(reviewer),
        timeout=10,
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["tags"]["ferry.trusted_by"] == reviewer_id


def test_public_on_a_code_model_needs_the_trust_scope(
    home: Home, server: str, tmp_path: Path
) -> None:
    marker = tmp_path / "custom.ran"
    made = home.ferry(
        "keys", "create", "--name", "reviewer", "--scope", "publish:team-*", "--scope",
        "trust:team-*", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    reviewer = json.loads(made.stdout)["key"]
    publisher = home.key("ci", "publish:team-*")
    assert upload(server, reviewer, "team-code", [*custom_parts(marker), TRUST]).status_code == 201
    public = {"tags": {"public": "true"}}
    url = f"{server}{API}/models/team-code"
    refused = httpx.patch(url, json=public, headers=auth(publisher), timeout=10)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["details"]["required"] == "trust:team-code"
    time.sleep(2.5)  # the public set is re-read every 2 s: still closed
    assert predict(server, "team-code", None).status_code == 401
    accepted = httpx.patch(url, json=public, headers=auth(reviewer), timeout=10)
    assert accepted.status_code == 200, accepted.text
    deadline = time.monotonic() + 10
    while (answer := predict(server, "team-code", None)).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    assert answer.json()["predictions"] == [3.0, 7.0]


def test_a_code_version_into_a_public_model_needs_the_trust_scope(
    home: Home, server: str, tmp_path: Path
) -> None:
    """``open`` is public and holds a data model: a publish key may not add code to it; a trust
    key may, and the audit record says the model was public when it did."""
    marker = tmp_path / "custom.ran"
    publisher = home.key("ci", "publish:open")
    reviewer = home.key("reviewer", "publish:open", "trust:open")
    admin = home.key("root", "admin")
    parts = custom_parts(marker)
    assert upload(server, publisher, "open", parts).status_code == 422
    assert upload(server, publisher, "open", [*parts, TRUST]).status_code == 403
    assert versions(server, publisher, "open") == [1]
    assert not marker.exists()
    trusted = upload(server, reviewer, "open", [*parts, TRUST])
    assert trusted.status_code == 201, trusted.text
    assert trusted.json()["version"] == 2
    [record] = trust_records(server, admin, "open/2")
    assert record["details"]["trusted"]["public"] is True
