"""The data plane tells its observers about every answered request, over all protocols."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ferry.db.events import PredictionEvent
from ferry.model.loaded import load
from ferry.security.identity import PRINCIPAL_SCOPE_KEY, Principal
from ferry.server.app import create_app
from tests.integration.inprocess import running

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.events: list[PredictionEvent] = []
        self.closed = threading.Event()

    def observe(self, event: PredictionEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed.set()


class SetPrincipal:
    """Stands where an authentication layer would: names the caller in the ASGI scope."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        scope[PRINCIPAL_SCOPE_KEY] = Principal("key-ci", "ci", "key", ())
        await self.app(scope, receive, send)  # type: ignore[operator]


def test_observers_see_every_answer(
    iris_bundle: Path,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, _ = iris_data
    recorder = Recorder()
    app = create_app(None, [load(iris_bundle)], observers=[recorder])
    rows = X.iloc[:3].to_dict(orient="records")
    with running(SetPrincipal(app)) as base, httpx.Client(base_url=base, timeout=10) as client:
        ok = client.post("/v1/models/iris/predict", json={"instances": rows})
        assert ok.status_code == 200
        mlflow = client.post("/invocations", json={"dataframe_records": rows[:2]})
        assert mlflow.status_code == 200
        bad = client.post("/v1/models/iris/predict", json={"instances": [{"sepal_length": 1}]})
        assert bad.status_code == 422
        missing = client.post("/v1/models/nope/predict", json={"instances": rows})
        assert missing.status_code == 404
    assert recorder.closed.is_set()

    first, second, third, fourth = recorder.events
    assert (first.model, first.protocol, first.status, first.rows) == ("iris", "native", 200, 3)
    assert first.request_id == ok.json()["request_id"]
    assert first.principal == "key-ci"
    assert first.error_code is None
    assert first.inputs is not None
    assert first.outputs is not None
    expected = iris_model.predict(X.iloc[:3])
    assert np.array_equal(first.outputs["predictions"], expected)
    assert first.inputs.columns["petal_width"].tolist() == X["petal_width"].iloc[:3].tolist()
    assert (second.protocol, second.rows) == ("mlflow", 2)
    assert (third.status, third.rows, third.error_code) == (422, 0, "missing_column")
    assert third.outputs is None
    assert (fourth.model, fourth.status, fourth.error_code) == ("-", 404, "model_not_found")
    assert all(event.seconds > 0 for event in recorder.events)
