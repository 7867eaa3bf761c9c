"""A model that raises answers 500 with the request id (logged), and the server keeps serving."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pandas as pd
import pytest

import ferry.model
from tests.integration.conftest import served

pytestmark = pytest.mark.integration

PREDICTOR = textwrap.dedent(
    """
    import numpy as np

    class Fragile:
        def predict(self, frame):
            if (frame["x"] < 0).any():
                raise ValueError("x must not be negative")
            return np.asarray(frame["x"] * 2.0)
    """
)


def test_model_exception_is_a_500_and_the_server_survives(tmp_path: Path) -> None:
    (tmp_path / "fragile.py").write_text(PREDICTOR)
    bundle = tmp_path / "bundle"
    ferry.model.save(
        f"{tmp_path / 'fragile.py'}:Fragile", bundle, example=pd.DataFrame({"x": [1.0, 2.5]})
    )
    log = tmp_path / "serve.log"
    with served(bundle, "--trust", log=log) as url:  # our own test class: code
        bad = httpx.post(
            f"{url}/v1/models/fragile/predict",
            json={"instances": [{"x": -1.0}]},
            headers={"x-request-id": "req-123"},
        )
        assert bad.status_code == 500
        error = bad.json()["error"]
        assert error["code"] == "prediction_failed"
        # the server's own id, never the client's (which any caller may reuse), finds the log
        server_id = error["details"]["request_id"]
        assert server_id != "req-123"
        assert len(server_id) == 32
        assert server_id in error["message"]
        v2 = httpx.post(
            f"{url}/v2/models/fragile/infer",
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [-3.0]}]},
        )
        assert v2.status_code == 500
        # a 5xx body is a fixed text naming the request id (issue 14); the model's words,
        # which may quote its internals, are in the log under that id
        assert "x must not be negative" not in v2.text
        assert v2.headers["x-request-id"] in v2.json()["error"]
        assert "x must not be negative" in log.read_text()
        mlflow = httpx.post(f"{url}/invocations", json={"inputs": {"x": [-2.0]}})
        assert mlflow.status_code == 500
        assert mlflow.json()["error_code"] == "INTERNAL_ERROR"
        good = httpx.post(f"{url}/v1/models/fragile/predict", json={"inputs": {"x": [1.5, 4.0]}})
        assert good.status_code == 200
        assert good.json()["predictions"] == [3.0, 8.0]
    assert server_id in log.read_text()
    assert "x must not be negative" in log.read_text()
