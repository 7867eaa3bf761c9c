"""Drift end to end on a real ``ferry server``: register with a reference, ``ferry drift``,
the stored history, the HTML report, the gauges on /metrics and the alert webhook."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import IRIS_COLUMNS
from tests.integration.control.conftest import StartControl
from tests.integration.monitoring.conftest import Receiver, get, patch, post
from tests.unit.monitoring.test_drift import SHIFTED, iris_population, shift

pytestmark = pytest.mark.integration

SHIFTED_COLUMNS = [IRIS_COLUMNS[0], IRIS_COLUMNS[3]]  # sepal_length, petal_width


def population(rows: int, seed: int) -> object:
    return iris_population(rows, seed).set_axis(IRIS_COLUMNS, axis=1)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ok(result: object) -> str:
    assert getattr(result, "returncode", 1) == 0, f"{result}"
    return str(getattr(result, "stdout", ""))


def test_drift_through_server_and_cli(
    start_control: StartControl, receiver: Receiver, iris_bundle: Path, tmp_path: Path
) -> None:
    assert SHIFTED == ["sepal_length", "petal_width"]  # the same columns, iris' real names
    receiver.answers = [503, 200]  # the webhook fails once, then takes the alert
    server = start_control(FERRY_ALERT_WEBHOOK_URL=receiver.url)
    reference = tmp_path / "train.parquet"
    population(1000, 1).to_parquet(reference)  # type: ignore[attr-defined]
    fresh, shifted = tmp_path / "fresh.csv", tmp_path / "shifted.csv"
    population(800, 2).to_csv(fresh, index=False)  # type: ignore[attr-defined]
    shift(population(800, 3), SHIFTED_COLUMNS).to_csv(shifted, index=False)  # type: ignore[arg-type]

    ok(
        server.ferry(
            "register",
            str(iris_bundle),
            "-n",
            "iris",
            "--alias",
            "production",
            "--reference",
            str(reference),
        )
    )
    profile = get(f"{server.url}/api/v1/models/iris/versions/1/profile").json()
    assert profile["source"] == "reference"
    assert profile["rows"] == 1000
    assert [f["name"] for f in profile["features"]] == IRIS_COLUMNS

    # a fresh sample of the reference's distribution: no drift, no alert
    quiet = json.loads(ok(server.ferry("drift", "iris@production", "--data", str(fresh), "--json")))
    assert quiet["report"]["drifted_features"] == []
    assert quiet["alert"] is None
    assert receiver.bodies == []

    # two shifted features: exactly they drift, by PSI and KS; the alert gets through on retry
    html = tmp_path / "drift.html"
    run = server.ferry(
        "drift", "iris@production", "--data", str(shifted), "--html", str(html), "--fail-on-drift"
    )
    assert run.returncode == 3, run
    assert "DRIFT in sepal_length, petal_width" in run.stdout
    assert html.read_text().startswith("<!doctype html>")
    history = json.loads(ok(server.ferry("drift", "iris", "--history", "--json")))["items"]
    assert [item["drifted_features"] for item in history] == [SHIFTED_COLUMNS, []]
    latest = get(f"{server.url}/api/v1/drift/{history[0]['id']}").json()["report"]
    for feature in latest["features"]:
        drifted = feature["name"] in SHIFTED_COLUMNS
        assert feature["tests"]["psi"]["drifted"] is drifted
        assert feature["tests"]["ks"]["drifted"] is drifted
    wait_for(lambda: len(receiver.bodies) == 2, "the alert, posted in the background")
    assert receiver.bodies[-1]["alert"] == "data_drift"
    assert receiver.bodies[-1]["drifted_features"] == SHIFTED_COLUMNS
    assert receiver.bodies[-1]["report_id"] == history[0]["id"]

    page = get(f"{server.url}/api/v1/drift/{history[0]['id']}/report.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg") == 4

    # the last run's statistics on /metrics
    text = get(f"{server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    psi = {s.labels["feature"]: s.value for s in families["ferry_drift_psi"].samples}
    assert psi == pytest.approx(
        {f["name"]: f["tests"]["psi"]["statistic"] for f in latest["features"]}
    )
    flags = {s.labels["feature"]: s.value for s in families["ferry_drift_feature_drifted"].samples}
    assert {name for name, value in flags.items() if value == 1.0} == set(SHIFTED_COLUMNS)

    # a version registered without a reference is profiled from its input example
    ok(server.ferry("register", str(iris_bundle), "-n", "iris-copy"))
    copy = get(f"{server.url}/api/v1/models/iris-copy/versions/1/profile").json()
    assert copy["source"] == "example"
    assert copy["rows"] == 8


def test_drift_alert_does_not_wait_for_the_webhook(
    start_control: StartControl, receiver: Receiver, iris_bundle: Path, tmp_path: Path
) -> None:
    receiver.delay = 3.0  # a slow receiver: each post takes 3 s to be taken
    server = start_control(FERRY_ALERT_WEBHOOK_URL=receiver.url)
    reference = tmp_path / "train.parquet"
    population(1000, 1).to_parquet(reference)  # type: ignore[attr-defined]
    ok(server.ferry("register", str(iris_bundle), "-n", "iris", "--reference", str(reference)))
    api = f"{server.url}/api/v1/models/iris/versions/1/drift"
    fresh = post(api, json={"rows": population(800, 2).to_dict("records")})  # type: ignore[attr-defined]
    assert fresh.status_code == 200
    assert fresh.json()["alert"] is None  # no drift, nothing to post

    rows = shift(population(800, 3), SHIFTED_COLUMNS).to_dict("records")  # type: ignore[arg-type]
    started = time.monotonic()
    drifted = post(api, json={"rows": rows})
    answered = time.monotonic() - started
    assert drifted.status_code == 200
    run = drifted.json()
    assert run["report"]["drifted_features"] == SHIFTED_COLUMNS
    assert run["alert"] == "queued"
    assert answered < receiver.delay, answered
    assert receiver.bodies == []  # the receiver is still taking it
    wait_for(lambda: len(receiver.bodies) == 1, "the alert")
    assert time.monotonic() - started >= receiver.delay
    assert receiver.bodies[0]["alert"] == "data_drift"
    assert receiver.bodies[0]["report_id"] == run["id"]


def test_bad_drift_requests(start_control: StartControl, iris_bundle: Path, tmp_path: Path) -> None:
    server = start_control()
    unrelated = tmp_path / "other.csv"
    unrelated.write_text("a,b\n1,2\n")
    bad = server.ferry("register", str(iris_bundle), "-n", "iris", "--reference", str(unrelated))
    assert bad.returncode == 1
    assert "none of the model's inputs" in bad.stdout + bad.stderr
    assert get(f"{server.url}/api/v1/models/iris").status_code == 404  # nothing registered

    ok(server.ferry("register", str(iris_bundle), "-n", "iris"))
    api = f"{server.url}/api/v1/models/iris/versions/1/drift"
    both = post(api, json={"rows": [{"sepal_length": 1}], "window_seconds": 60})
    assert both.status_code == 400
    assert both.json()["error"]["details"]["field"] == "window_seconds"
    forever = post(api, json={"window_seconds": 1e300})  # overflowed timedelta: was a 500
    assert 400 <= forever.status_code < 500, forever.text
    assert "window_seconds" in forever.text
    neither = post(api, json={})
    assert neither.status_code == 400
    assert "rows, dataframe_split or window_seconds" in neither.json()["error"]["message"]
    ragged = post(api, json={"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}})
    assert ragged.status_code == 400
    assert ragged.json()["error"]["details"]["field"] == "dataframe_split.data"
    missing = post(f"{server.url}/api/v1/models/iris/versions/9/drift", json={"rows": []})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "version_not_found"
    assert get(f"{server.url}/api/v1/drift/12345").json()["error"]["code"] == (
        "drift_report_not_found"
    )
    tagged = patch(f"{server.url}/api/v1/models/iris", json={"tags": {"drift.psi": "-2"}})
    assert tagged.status_code == 200
    rows = population(100, 5).to_dict("records")  # type: ignore[attr-defined]
    refused = post(api, json={"rows": rows})
    assert refused.status_code == 400
    assert refused.json()["error"]["details"]["field"] == "drift.psi"
