"""One truth per protocol on ``ferry server`` (issue 14, point 9), against a real server with
2 workers and 2 registered models, auth off: ``GET /v1/models`` lists every registered model
from every worker before any prediction; KServe V1 ``:predict`` predicts and
``GET /v1/models/{name}`` carries V1's ``ready``; ``/v2`` does not advertise the
model-repository extension it does not implement; ``ferry predict URL`` finds the only model
without ``--name``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import ferry.model
from ferry.client import Client
from tests.integration.conftest import ferry_cli, platform_server

pytestmark = pytest.mark.integration

LISTINGS = 20


@dataclass(frozen=True, slots=True)
class Platform:
    url: str
    home: Path
    rows: pd.DataFrame
    want: dict[str, list[int]]  # each model's own predictions for ``rows``


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    iris_bundle: Path,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> Iterator[Platform]:
    """Two models registered over HTTP with a first server; then a fresh 2-worker server, so
    no worker has loaded or predicted anything when the test starts."""
    X, y = iris_data
    tmp = tmp_path_factory.mktemp("platform-protocols")
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    ferry.model.save(stump, tmp / "stump", example=X.head(5), name="stump")
    home = tmp / "home"
    with (
        platform_server(home, "--workers", "1", log=tmp / "register.log") as url,
        Client(url) as client,
    ):
        assert client.register(iris_bundle, "iris").version == 1
        assert client.register(tmp / "stump", "stump").version == 1
    rows = X.iloc[[0, 60, 70, 120, 149]]
    want = {"iris": iris_model.predict(rows).tolist(), "stump": stump.predict(rows).tolist()}
    assert want["iris"] != want["stump"]
    with platform_server(home, "--workers", "2", log=tmp / "server.log") as url:
        yield Platform(url, home, rows, want)


def test_every_worker_lists_every_registered_model_before_any_prediction(
    platform: Platform,
) -> None:
    # a new connection per call, so the calls spread over both workers (one keep-alive
    # connection would stay with one worker)
    answers = [httpx.get(f"{platform.url}/v1/models", timeout=60) for _ in range(LISTINGS)]
    assert {answer.status_code for answer in answers} == {200}
    listings = [answer.json()["models"] for answer in answers]
    assert all(listing == listings[0] for listing in listings)
    assert listings[0] == [
        {"name": "iris", "loaded": False, "ready": False},
        {"name": "stump", "loaded": False, "ready": False},
    ]


def test_kserve_v1_predict_and_ready(platform: Platform) -> None:
    instances = platform.rows.to_numpy().tolist()
    with httpx.Client(base_url=platform.url, timeout=60) as http:
        for name, want in platform.want.items():
            answer = http.post(f"/v1/models/{name}:predict", json={"instances": instances})
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == want
            # objects as rows too, as KServe V1 clients send them
            records = platform.rows.to_dict("records")
            answer = http.post(f"/v1/models/{name}:predict", json={"instances": records})
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == want
            metadata = http.get(f"/v1/models/{name}")
            assert metadata.status_code == 200, metadata.text
            assert metadata.json()["name"] == name
            assert metadata.json()["ready"] is True
        unknown = http.post("/v1/models/nope:predict", json={"instances": instances})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "model_not_found"
        # a listing after predictions still names every model, loaded or not in that worker
        names = [m["name"] for m in http.get("/v1/models").json()["models"]]
        assert names == ["iris", "stump"]


def test_v2_server_metadata_does_not_advertise_model_repository(platform: Platform) -> None:
    answer = httpx.get(f"{platform.url}/v2", timeout=60)
    assert answer.status_code == 200
    extensions = answer.json()["extensions"]
    assert "model_repository" not in extensions
    # what it does advertise works: a model's V2 metadata and readiness
    assert httpx.get(f"{platform.url}/v2/models/iris/ready", timeout=60).json()["ready"] is True
    # and the repository index it does not advertise is not there
    index = httpx.post(f"{platform.url}/v2/repository/index", json={}, timeout=60)
    assert index.status_code == 404


def test_ferry_predict_without_name_needs_one_model(platform: Platform, tmp_path: Path) -> None:
    data = tmp_path / "rows.json"
    data.write_text(json.dumps({"instances": platform.rows.to_dict("records")}))
    env = {"FERRY_HOME": str(platform.home), "NO_COLOR": "1", "COLUMNS": "200"}
    two = ferry_cli("predict", platform.url, "--data", str(data), "--json", env=env)
    assert two.returncode != 0
    assert "choose one with --name" in two.stdout + two.stderr
    named = ferry_cli(
        "predict", platform.url, "--data", str(data), "--name", "stump", "--json", env=env
    )
    assert named.returncode == 0, named.stdout + named.stderr
    assert json.loads(named.stdout)["predictions"] == platform.want["stump"]


def test_ferry_predict_without_name_on_a_one_model_server(
    tmp_path: Path, iris_bundle: Path, iris_model: LogisticRegression, platform: Platform
) -> None:
    home = tmp_path / "home"
    with platform_server(home, "--workers", "1", log=tmp_path / "one.log") as url:
        with Client(url) as client:
            client.register(iris_bundle, "iris")
        data = tmp_path / "rows.json"
        data.write_text(json.dumps({"instances": platform.rows.to_dict("records")}))
        env = {"FERRY_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
        # before any prediction: the listing names iris, not loaded
        answer = ferry_cli("predict", url, "--data", str(data), "--json", env=env)
        assert answer.returncode == 0, answer.stdout + answer.stderr
        assert (
            json.loads(answer.stdout)["predictions"] == iris_model.predict(platform.rows).tolist()
        )
