"""Models that answer a vector per row (multi-output regression, embeddings) keep that shape in
every protocol, and ``--workers`` serves the same answers from several processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

import ferry.model
from tests.integration.conftest import ServeFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    X, _ = load_diabetes(return_X_y=True, as_frame=True)
    return X


@pytest.fixture(scope="module")
def multi_output(
    tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame
) -> tuple[LinearRegression, Path]:
    targets = np.column_stack([frame["bmi"] * 3 + frame["bp"], frame["s1"] - frame["age"]])
    model = LinearRegression().fit(frame.drop(columns=["bmi", "bp", "s1"]), targets)
    path = tmp_path_factory.mktemp("bundles") / "multi"
    example = frame.drop(columns=["bmi", "bp", "s1"]).head(5)
    ferry.model.save(model, path, example=example, name="multi", flavor="sklearn")
    return model, path


def test_multi_output_regression(
    serve: ServeFactory, multi_output: tuple[LinearRegression, Path], frame: pd.DataFrame
) -> None:
    model, path = multi_output
    url = serve(path)
    rows = frame.drop(columns=["bmi", "bp", "s1"]).iloc[10:14]
    expected = model.predict(rows)
    native = httpx.post(
        f"{url}/v1/models/multi/predict", json={"instances": rows.to_dict("records")}
    )
    assert native.status_code == 200, native.text
    np.testing.assert_allclose(native.json()["predictions"], expected, rtol=1e-9)
    mlflow = httpx.post(f"{url}/invocations", json={"dataframe_records": rows.to_dict("records")})
    np.testing.assert_allclose(mlflow.json()["predictions"], expected, rtol=1e-9)
    metadata = httpx.get(f"{url}/v2/models/multi").json()
    assert metadata["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1, 2]}]
    body = {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
            for c in rows.columns
        ]
    }
    (output,) = httpx.post(f"{url}/v2/models/multi/infer", json=body).json()["outputs"]
    assert output["shape"] == [len(rows), 2]
    assert output["datatype"] == "FP64"
    np.testing.assert_allclose(np.reshape(output["data"], (len(rows), 2)), expected, rtol=1e-9)


def worker_pids(url: str) -> set[int]:
    metrics = httpx.get(f"{url}/metrics").text
    return {
        int(line.split('pid="')[1].split('"')[0])
        for line in metrics.splitlines()
        if line.startswith('ferry_worker_memory_bytes{kind="pss"')
    }


def test_workers_share_the_model_and_restart(
    serve: ServeFactory, iris_bundle: Path, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris_data
    url = serve(iris_bundle, "--workers", "2")
    rows = X.iloc[::15]
    expected = ferry.model.load(iris_bundle).predict(rows).tolist()
    body = {"instances": rows.to_dict("records")}
    with httpx.Client() as client:
        for _ in range(20):
            response = client.post(f"{url}/v1/models/iris/predict", json=body)
            assert response.json()["predictions"] == expected
    metrics = httpx.get(f"{url}/metrics").text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith('ferry_requests_total{model="iris",protocol="native",status="200"')
    ]
    assert counted
    assert float(counted[0].rsplit(" ", 1)[1]) >= 20  # summed over both workers
    pids = worker_pids(url)
    assert len(pids) == 2
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            current = worker_pids(url)
        except httpx.TransportError:
            current = set()
        if len(current) == 2 and victim not in current:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the killed worker was not replaced")
    response = httpx.post(f"{url}/v1/models/iris/predict", json=body)
    assert response.json()["predictions"] == expected
