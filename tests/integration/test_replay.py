"""``ferry server --workers 2`` logs every prediction into the registry's database (SQLite or
PostgreSQL); ``ferry logs`` lists them and ``ferry replay`` re-runs one against another
version, giving that version's answer, and keeps it as a regression case."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import ferry.model
from ferry.client import Client
from ferry.model.loaded import load
from ferry.monitoring.cases import cases, check_case
from tests.integration.conftest import ferry_cli, platform_server
from tests.registry_fixtures import Backend

pytestmark = pytest.mark.integration


def test_replay_against_another_version(
    tmp_path: Path,
    registry_backend: Backend,
    iris_bundle: Path,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = iris_data
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    ferry.model.save(stump, tmp_path / "stump", example=X.head(5), name="iris")
    rows = X.iloc[[0, 60, 70, 120, 149]]
    assert iris_model.predict(rows).tolist() != stump.predict(rows).tolist()
    home = tmp_path / "home"
    env = {"FERRY_HOME": str(home), **registry_backend.ferry_env}
    with (
        platform_server(home, "--workers", "2", log=tmp_path / "server.log", env=env) as url,
        Client(url) as client,
    ):
        client.register(iris_bundle, "iris")
        client.register(tmp_path / "stump", "iris")
        body = {"instances": rows.to_dict("records")}
        ids = []
        for _ in range(6):
            answer = httpx.post(
                f"{url}/v1/models/iris/versions/1/predict", json=body, timeout=60
            ).json()
            assert answer["predictions"] == iris_model.predict(rows).tolist()
            ids.append(answer["request_id"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = httpx.get(f"{url}/api/v1/models/iris/predictions?limit=1000").json()
            if set(ids) <= {item["request_id"] for item in listed["items"]}:
                break
            time.sleep(0.2)
        one = httpx.get(f"{url}/api/v1/predictions/{ids[0]}").json()
        assert one["outputs"]["predictions"] == iris_model.predict(rows).tolist()
        missing = httpx.get(f"{url}/api/v1/predictions/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "prediction_not_found"
        over_http = ferry_cli("logs", "iris", "--since", "1h", "--json", "--url", url, env=env)
    assert over_http.returncode == 0, over_http.stderr
    assert set(ids) <= {item["request_id"] for item in json.loads(over_http.stdout)}

    # the server is gone: the CLI reads the store itself
    local = ferry_cli("logs", "iris", "--since", "1h", "--json", env=env)
    assert local.returncode == 0, local.stderr
    assert [item for item in json.loads(local.stdout) if item["request_id"] in ids] == [
        item for item in json.loads(over_http.stdout) if item["request_id"] in ids
    ]
    table = ferry_cli("logs", "iris", "--since", "1h", env={**env, "COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    assert ids[-1] in table.stdout
    assert "iris: 6 logged requests since 1h" in table.stdout

    replayed = ferry_cli("replay", ids[2], "--version", "2", "--json", "--save-test", env=env)
    assert replayed.returncode == 0, replayed.stderr
    answer = json.loads(replayed.stdout)
    assert answer["version"] == "2"
    assert answer["logged_version"] == "1"
    assert answer["outputs"]["predictions"] == stump.predict(rows).tolist()
    assert answer["same"] is False
    assert answer["saved"] is True
    same = ferry_cli("replay", ids[3], "--json", env=env)  # the logged version: same answer
    assert json.loads(same.stdout)["same"] is True
    unknown = ferry_cli("replay", "no-such-request", env=env)
    assert unknown.returncode == 1
    assert "no-such-request" in unknown.stderr

    passes = ferry_cli("cases", "iris", "--version", "2", "--json", env=env)
    assert passes.returncode == 0, passes.stderr
    assert json.loads(passes.stdout)["cases"] == [{"request_id": ids[2], "passed": True}]
    fails = ferry_cli("cases", "iris", "--version", "1", env={**env, "COLUMNS": "200"})
    assert fails.returncode == 1
    assert "FAIL" in fails.stdout

    # the saved case replays against any version: version 2 passes, version 1 differs
    with registry_backend.open(migrate=False) as registry:
        (case,) = cases(registry, "iris")
        v1 = load(registry.checkout("iris", 1, tmp_path / "cache"))
        v2 = load(registry.checkout("iris", 2, tmp_path / "cache"))
    assert (case.request_id, case.version, case.logged_version) == (ids[2], "2", "1")
    assert check_case(v2, case) == []
    assert check_case(v1, case) != []
