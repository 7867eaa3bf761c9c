"""Drift over the prediction log on a real ``ferry server``: ``ferry drift --window`` and the
scheduled job, which stores reports by itself and alerts the webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import IRIS_COLUMNS
from tests.integration.control.conftest import StartControl
from tests.integration.monitoring.conftest import Receiver, get, post
from tests.unit.monitoring.test_drift import iris_population, shift

pytestmark = pytest.mark.integration

SHIFTED = ["sepal_length", "petal_width"]
ROWS, PER_REQUEST = 600, 50


def wait_for(check: object, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()  # type: ignore[operator]
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not true within {timeout}s")


def test_window_and_scheduled_drift(
    start_control: StartControl, receiver: Receiver, iris_bundle: Path, tmp_path: Path
) -> None:
    server = start_control(
        FERRY_DRIFT_INTERVAL_SECONDS="2",
        FERRY_DRIFT_WINDOW_SECONDS="3600",
        FERRY_ALERT_WEBHOOK_URL=receiver.url,
    )
    reference = tmp_path / "train.csv"
    iris_population(1000, 1).set_axis(IRIS_COLUMNS, axis=1).to_csv(reference, index=False)
    registered = server.ferry(
        "register",
        str(iris_bundle),
        "-n",
        "iris",
        "--alias",
        "production",
        "--reference",
        str(reference),
    )
    assert registered.returncode == 0, registered

    live = shift(iris_population(ROWS, 7).set_axis(IRIS_COLUMNS, axis=1), SHIFTED)
    for start in range(0, ROWS, PER_REQUEST):
        rows = live.iloc[start : start + PER_REQUEST].to_dict("records")
        answer = post(f"{server.url}/v1/models/iris@production/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text

    def logged() -> bool:  # the log is written by a background thread
        run = server.ferry("drift", "iris@production", "--window", "1h", "--json", "--no-store")
        assert run.returncode == 0, run
        return json.loads(run.stdout)["report"]["live_rows"] == ROWS

    wait_for(logged)
    run = json.loads(server.ferry("drift", "iris@production", "--window", "1h", "--json").stdout)
    report = run["report"]
    assert report["drifted_features"] == SHIFTED
    assert report["window_start"] is not None
    for feature in report["features"]:
        assert feature["tests"]["psi"]["drifted"] is (feature["name"] in SHIFTED)
        assert feature["tests"]["ks"]["drifted"] is (feature["name"] in SHIFTED)

    # the scheduled job stores its own reports and posts the alert
    def scheduled() -> list[dict[str, object]]:
        items = get(f"{server.url}/api/v1/models/iris/drift").json()["items"]
        return [i for i in items if i["id"] != run["id"]]

    [job, *_] = wait_for(scheduled)  # type: ignore[misc]
    assert job["drifted_features"] == SHIFTED
    assert job["live_rows"] == ROWS
    wait_for(lambda: any(b.get("report_id") == job["id"] for b in receiver.bodies))
    bad = server.ferry("drift", "iris", "--window", "soon")
    assert bad.returncode == 1
    assert "not a duration" in bad.stdout + bad.stderr
