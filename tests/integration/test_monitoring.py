"""Monitoring against real ``ferry serve --workers 2`` processes: /metrics counts every
request once across workers, the prediction log holds exactly what was answered, and
feedback yields the accuracy scikit-learn computes independently."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from ferry.monitoring.predlog import PredictionStore, read_inputs, read_records
from tests.integration.conftest import start_server, stop_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def logged_server(
    iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("home")
    process, base_url = start_server(
        iris_bundle,
        "--workers", "2", "--log-predictions", "all",
        log=home / "serve.log",
        env={"FERRY_HOME": str(home), "FERRY_PERFORMANCE_THRESHOLDS": '{"accuracy": 0.99}',
             "FERRY_PERFORMANCE_MIN_SAMPLES": "50"},
    )  # fmt: skip
    try:
        yield base_url, home
    finally:
        stop_server(process)


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in sample for k, v in labels.items()):
            total += float(value)
    return total


def wait_logged(client: httpx.Client, count: int, query: str = "") -> list[dict[str, object]]:
    deadline = time.monotonic() + 20
    while True:
        items: list[dict[str, object]] = client.get(
            f"/api/v1/models/iris/predictions?limit=10000{query}"
        ).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


def test_metrics_and_log_across_two_workers(
    logged_server: tuple[str, Path],
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    base_url, home = logged_server
    X, _ = iris_data
    rng = np.random.default_rng(1)
    answers: dict[str, tuple[pd.DataFrame, list[int]]] = {}
    n = 60
    with httpx.Client(base_url=base_url, timeout=10) as client:
        before = client.get("/metrics").text
        start_count = metric_sum(before, "ferry_requests_total", model="iris", status="200")
        for i in range(n):
            rows = X.iloc[rng.integers(0, len(X), i % 4 + 1)]
            if i % 3 == 0:  # MLflow's protocol is counted and logged the same way
                response = client.post(
                    "/invocations", json={"dataframe_records": rows.to_dict("records")}
                )
                request_id = response.headers["x-request-id"]
                predicted = response.json()["predictions"]
            else:
                response = client.post(
                    "/v1/models/iris/predict", json={"instances": rows.to_dict("records")}
                )
                request_id = response.json()["request_id"]
                predicted = response.json()["predictions"]
            assert response.status_code == 200, response.text
            answers[request_id] = (rows, predicted)
        bad = client.post("/v1/models/iris/predict", json={"instances": [{"sepal_length": 1}]})
        assert bad.status_code == 422
        logged = wait_logged(client, n + 1)
        time.sleep(1.5)  # the output metrics fold in every second
        text = client.get("/metrics").text
    ok = metric_sum(text, "ferry_requests_total", model="iris", status="200") - start_count
    assert ok == n
    assert metric_sum(text, "ferry_requests_total", model="iris", status="422") == 1
    rows_total = sum(len(rows) for rows, _ in answers.values())
    assert metric_sum(text, "ferry_predicted_rows_total", model="iris") >= rows_total
    assert metric_sum(text, "ferry_predicted_classes_total", model="iris") >= rows_total
    assert metric_sum(text, "ferry_model_errors_total", model="iris", code="missing_column") == 1
    assert metric_sum(text, "ferry_model_load_seconds", model="iris") > 0
    assert metric_sum(text, "ferry_predlog_dropped_total") == 0
    assert re.search(r'ferry_request_duration_seconds_count\{model="iris"', text)

    by_id = {str(item["request_id"]): item for item in logged if item["status"] == 200}
    assert set(by_id) >= set(answers)
    for request_id, (rows, predicted) in answers.items():
        item = by_id[request_id]
        inputs = pd.DataFrame(item["inputs"])[list(X.columns)]
        assert np.array_equal(inputs.to_numpy(), rows.to_numpy())
        assert item["outputs"]["predictions"] == predicted  # type: ignore[index]
        assert predicted == iris_model.predict(rows).tolist()
    failed = [item for item in logged if item["status"] == 422]
    assert [item["error_code"] for item in failed] == ["missing_column"]

    # the same log, read from the store directly, as drift detection does
    store = PredictionStore.open(f"sqlite:///{home / 'ferry.db'}")
    try:
        records = [r for r in read_records(store, "iris", limit=10000) if r.status == 200]
        frame = read_inputs(store, "iris", columns=list(X.columns))
    finally:
        store.close()
    assert len(records) == len(by_id)
    assert len(frame) == sum(int(item["rows"]) for item in by_id.values())  # type: ignore[call-overload]


def test_feedback_gives_the_exact_accuracy(
    logged_server: tuple[str, Path], iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    base_url, home = logged_server
    X, y = iris_data
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(X), 100)
    truths: list[int] = []
    predicted: list[int] = []
    ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for index in picks:
            row = X.iloc[[index]]
            answer = client.post(
                "/v1/models/iris/predict", json={"instances": row.to_dict("records")}
            ).json()
            ids.append(answer["request_id"])
            predicted.append(answer["predictions"][0])
            # every 7th truth flipped, so the accuracy is well below 1
            truth = int(y.iloc[index])
            truths.append((truth + 1) % 3 if len(truths) % 7 == 0 else truth)
        # at once, while the workers have not written the requests yet: found all the same
        batch = {
            "items": [
                {"request_id": i, "truth": t} for i, t in zip(ids[:60], truths[:60], strict=True)
            ]
        }
        accepted = client.post("/v1/models/iris/feedback", json=batch)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["accepted"] == 60
        for request_id, truth in zip(ids[60:], truths[60:], strict=True):
            one = client.post(
                "/v1/models/iris/feedback", json={"request_id": request_id, "truth": [truth]}
            )
            assert one.status_code == 200, one.text
        performance = client.get("/v1/models/iris/performance?window=1h").json()

        unknown = client.post(
            "/v1/models/iris/feedback", json={"request_id": "no-such-id", "truth": 1}
        )
        wrong_length = client.post(
            "/v1/models/iris/feedback", json={"request_id": ids[0], "truth": [1, 2]}
        )
        malformed = client.post("/v1/models/iris/feedback", json={"items": [{"truth": 1}]})
        bad_window = client.get("/v1/models/iris/performance?window=soon")
        metrics = client.get("/metrics").text

    (version,) = performance["versions"]
    assert version["task"] == "classification"
    assert version["n"] == 100
    assert version["accuracy"] == accuracy_score(truths, predicted)
    assert version["f1"] == pytest.approx(f1_score(truths, predicted, average="macro"), abs=1e-12)
    assert version["accuracy"] < 0.99

    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "prediction_not_found"
    assert "no-such-id" in unknown.json()["error"]["message"]
    assert wrong_length.status_code == 400
    assert wrong_length.json()["error"]["details"]["field"] == "truth"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["details"]["field"] == "items[0].request_id"
    assert bad_window.status_code == 400
    assert bad_window.json()["error"]["details"]["field"] == "window"
    assert metric_sum(metrics, "ferry_feedback_total", model="iris") == 100
    assert metric_sum(
        metrics, "ferry_model_performance", model="iris", metric="accuracy"
    ) == pytest.approx(accuracy_score(truths, predicted))
    # FERRY_PERFORMANCE_THRESHOLDS accuracy 0.99 with 50 labeled rows: the alert is logged
    server_log = (home / "serve.log").read_text()
    assert "performance alert: iris version" in server_log
    assert "accuracy" in server_log
