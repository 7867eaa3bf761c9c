"""Feedback and log routes refuse what they cannot use with 4xx errors naming the field, on a
real in-thread server (the prediction log on SQLite in a temporary FERRY_HOME)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from ferry.config.paths import database_url
from ferry.config.settings import Settings
from ferry.db.migrations import upgrade
from ferry.model.loaded import load
from ferry.server.app import Features, create_app
from tests.integration.inprocess import running

pytestmark = pytest.mark.integration


def test_feedback_errors_name_the_field(
    tmp_path: Path, iris_bundle: Path, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris_data
    settings = Settings(home=tmp_path)
    upgrade(database_url(settings))
    alerts: list[object] = []
    features = Features(monitoring=True, prediction_log="all")
    app = create_app(settings, [load(iris_bundle)], features, alert_hooks=[alerts.append])
    rows = X.iloc[:2].to_dict("records")
    with running(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        ok = client.post("/v1/models/iris/predict", json={"instances": rows}).json()["request_id"]
        failed_id = "failed-1"
        bad = client.post(
            "/v1/models/iris/predict",
            json={"instances": [{"sepal_length": 1}]},
            headers={"x-request-id": failed_id},
        )
        assert bad.status_code == 422

        def feedback(body: object) -> httpx.Response:
            return client.post("/v1/models/iris/feedback", json=body)

        cases = [
            (feedback([1]), 400, "body"),
            (feedback({"request_id": ok, "truth": [0, 1], "extra": 1}), 400, "extra"),
            (feedback({"items": []}), 400, "items"),
            (feedback({"items": [{"request_id": ok}]}), 400, "items[0].truth"),
            (feedback({"request_id": ok, "truth": [0, {"x": 1}]}), 400, "truth"),
            (feedback({"request_id": ok, "truth": 0}), 400, "truth"),  # 2 rows, 1 value
            (
                feedback({"items": [{"request_id": ok, "truth": [0, 0]}] * 2}),
                400,
                "items[1].request_id",
            ),
            (feedback({"request_id": failed_id, "truth": 1}), 400, "request_id"),
            (
                client.post("/v1/models/other/feedback", json={"request_id": ok, "truth": [0, 0]}),
                404,
                "request_id",
            ),
            (client.get("/api/v1/models/iris/predictions?since=yesterday"), 400, "since"),
            (client.get("/api/v1/models/iris/predictions?limit=0"), 400, "limit"),
            (client.get("/v1/models/iris/performance?task=ranking"), 400, "task"),
        ]
        for response, status, field in cases:
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert error["details"]["field"] == field, error
        good = feedback({"request_id": ok, "truth": [0, 0]})
        assert good.json() == {"model": "iris", "accepted": 1, "rows": 2}
        logged = client.get(f"/api/v1/predictions/{failed_id}").json()
        assert (logged["status"], logged["error_code"]) == (422, "missing_column")


def test_without_the_log_feedback_says_how_to_turn_it_on(tmp_path: Path, iris_bundle: Path) -> None:
    settings = Settings(home=tmp_path)
    app = create_app(settings, [load(iris_bundle)], Features(monitoring=True))
    with running(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        answer = client.post("/v1/models/iris/feedback", json={"request_id": "x", "truth": 1})
        listing = client.get("/api/v1/models/iris/predictions")
        metrics = client.get("/metrics").text
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "prediction_log_disabled"
    assert "--log-predictions" in answer.json()["error"]["message"]
    assert listing.status_code == 409
    assert "ferry_predlog_dropped_total" in metrics
