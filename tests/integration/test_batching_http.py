"""Batching through a real server: 200 concurrent clients, each gets exactly its own answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import ServeFactory

pytestmark = pytest.mark.integration


async def fire(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return list(await asyncio.gather(*(client.post(url, json=b) for b in bodies)))


@pytest.mark.parametrize("batching", ["true", "false"])
def test_concurrent_requests_with_a_bad_one_inside(
    serve: ServeFactory,
    iris_bundle: Path,
    iris_data: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
    batching: str,
) -> None:
    X, _ = iris_data
    url = serve(iris_bundle, env={"FERRY_BATCHING": batching, "FERRY_MAX_WAIT_MS": "2"})
    rng = np.random.default_rng(1)
    frames = [X.iloc[rng.integers(0, len(X), size=rng.integers(1, 5))] for _ in range(200)]
    bodies: list[dict[str, Any]] = [
        {"instances": f.to_dict("records"), "outputs": ["predictions", "probabilities"]}
        for f in frames
    ]
    bad = 57
    bodies[bad] = {"instances": [{**frames[bad].iloc[0].to_dict(), "sepal_width": "wide"}]}
    responses = asyncio.run(fire(f"{url}/v1/models/iris/predict", bodies))
    assert responses[bad].status_code == 422
    assert responses[bad].json()["error"]["details"]["column"] == "sepal_width"
    for i, (frame, response) in enumerate(zip(frames, responses, strict=True)):
        if i == bad:
            continue
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["predictions"] == iris_model.predict(frame).tolist()
        np.testing.assert_allclose(answer["probabilities"], iris_model.predict_proba(frame))
    merged = merged_calls(httpx.get(f"{url}/metrics").text)
    assert (merged > 0) == (batching == "true")


def merged_calls(metrics: str) -> float:
    """Predict calls that carried more than one request, from the batch-size histogram."""
    values = {}
    for line in metrics.splitlines():
        if line.startswith("ferry_batch_requests_bucket") and 'model="iris"' in line:
            bound = line.split('le="')[1].split('"')[0]
            values[bound] = float(line.rsplit(" ", 1)[1])
    return values.get("+Inf", 0.0) - values.get("1.0", 0.0)
