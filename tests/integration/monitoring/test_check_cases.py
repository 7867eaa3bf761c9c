"""``ferry check`` replays the model's saved regression cases (``ferry replay --save-test``)
as well as the bundle's example: the version that gives the saved answers passes, a version
whose answers differ fails with the case named."""

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
from tests.integration.conftest import ServeFactory, ferry_cli, platform_server

pytestmark = pytest.mark.integration


def test_check_replays_saved_cases(
    tmp_path: Path,
    serve: ServeFactory,
    iris_bundle: Path,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = iris_data
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    stump_bundle = tmp_path / "stump"
    ferry.model.save(stump, stump_bundle, example=X.head(5), name="iris")
    rows = X.iloc[[0, 60, 70, 120, 149]]
    assert iris_model.predict(rows).tolist() != stump.predict(rows).tolist()
    home = tmp_path / "home"
    env = {"FERRY_HOME": str(home), "COLUMNS": "250"}
    with platform_server(home, log=tmp_path / "server.log") as url, Client(url) as client:
        client.register(iris_bundle, "iris")
        answer = httpx.post(
            f"{url}/v1/models/iris/versions/1/predict",
            json={"instances": rows.to_dict("records")},
            timeout=60,
        ).json()
        request_id = answer["request_id"]
        deadline = time.monotonic() + 20
        while httpx.get(f"{url}/api/v1/predictions/{request_id}").status_code == 404:
            assert time.monotonic() < deadline, "the prediction was never logged"
            time.sleep(0.2)
    saved = ferry_cli("replay", request_id, "--save-test", "--json", env=env)
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["saved"] is True

    # the version the case was saved from: example and case pass
    passes = ferry_cli("check", serve(iris_bundle), "--bundle", str(iris_bundle), "--json", env=env)
    assert passes.returncode == 0, passes.stdout + passes.stderr
    report = json.loads(passes.stdout)
    assert report["passed"] is True
    assert report["example"]["passed"] is True
    assert [(c["request_id"], c["passed"], c["rows"]) for c in report["cases"]] == [
        (request_id, True, len(rows))
    ]

    # another version: its own example passes, the saved case does not, and is named
    stump_url = serve(stump_bundle)
    fails = ferry_cli("check", stump_url, "--bundle", str(stump_bundle), "--json", env=env)
    assert fails.returncode == 1, fails.stdout + fails.stderr
    report = json.loads(fails.stdout)
    assert report["passed"] is False
    assert report["example"]["passed"] is True
    (case,) = report["cases"]
    assert case["request_id"] == request_id
    assert case["passed"] is False
    differ = [
        row
        for row, (a, b) in enumerate(
            zip(iris_model.predict(rows), stump.predict(rows), strict=True)
        )
        if a != b
    ]
    assert [m["row"] for m in case["mismatches"]] == differ
    assert [m["got"] for m in case["mismatches"]] == stump.predict(rows)[differ].tolist()

    table = ferry_cli("check", stump_url, "--bundle", str(stump_bundle), env=env)
    assert table.returncode == 1
    assert f"FAIL iris at {stump_url} (version" in table.stdout
    assert f"case {request_id}" in table.stdout
    assert "0 of 1 saved cases pass" in table.stdout

    # --no-cases: only the example, which passes
    alone = ferry_cli("check", stump_url, "--bundle", str(stump_bundle), "--no-cases", env=env)
    assert alone.returncode == 0, alone.stdout + alone.stderr
