"""Adaptive batching: merged calls, each request gets exactly its own rows, failures stay local."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ferry.model
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch
from ferry.server.serving.batching import Batcher, BatchingConfig


class PoisonPill:
    """Wraps a real predictor; raises when any row has sepal_length < 0."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def predict(self, batch: Batch) -> np.ndarray:
        self.calls += 1
        if (batch.columns["sepal_length"] < 0).any():
            raise ValueError("negative sepal")
        result: np.ndarray = self.inner.predict(batch)
        return result


@pytest.fixture
def model(iris_bundle: Path) -> LoadedModel:
    loaded = ferry.model.load(iris_bundle)
    return dataclasses.replace(loaded, predictor=PoisonPill(loaded.predictor))


def run_concurrently(batcher: Batcher, batches: list[Batch]) -> list[Any]:
    async def main() -> list[Any]:
        calls = [batcher.predict(b, ["predictions", "probabilities"]) for b in batches]
        return await asyncio.gather(*calls, return_exceptions=True)

    return asyncio.run(main())


@pytest.mark.parametrize("enabled", [True, False])
def test_200_concurrent_requests_get_their_own_rows(
    model: LoadedModel, iris_data: tuple[pd.DataFrame, pd.Series], enabled: bool
) -> None:
    X, _ = iris_data
    rng = np.random.default_rng(0)
    frames = [X.iloc[rng.integers(0, len(X), size=rng.integers(1, 4))] for _ in range(200)]
    batches = [model.to_batch(frame) for frame in frames]
    batcher = Batcher(model, BatchingConfig(enabled, 64, 0.0))
    results = run_concurrently(batcher, batches)
    for frame, result in zip(frames, results, strict=True):
        assert result["predictions"].tolist() == model.predict(frame).tolist()
        np.testing.assert_allclose(result["probabilities"], model.predict_proba(frame))
    if enabled:
        assert batcher.batches > 0
        assert batcher.merged_requests > 100
    else:
        assert batcher.batches == 0


def test_batches_respect_max_size(
    model: LoadedModel, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris_data
    batches = [model.to_batch(X.iloc[[i]]) for i in range(50)]
    batcher = Batcher(model, BatchingConfig(True, 8, 0.0))
    run_concurrently(batcher, batches)
    predictor = model.predictor
    assert isinstance(predictor, PoisonPill)
    assert predictor.calls * 8 >= 50  # never more than 8 rows per call


def test_a_failing_request_does_not_fail_its_neighbours(
    model: LoadedModel, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris_data
    frames = [X.iloc[[i]] for i in range(20)]
    poisoned = X.iloc[[3]].assign(sepal_length=-1.0)
    frames[7] = poisoned
    batcher = Batcher(model, BatchingConfig(True, 64, 0.0))
    results = run_concurrently(batcher, [model.to_batch(f) for f in frames])
    assert isinstance(results[7], ValueError)
    for i, (frame, result) in enumerate(zip(frames, results, strict=True)):
        if i != 7:
            assert result["predictions"].tolist() == model.predict(frame).tolist()


def test_max_wait_gathers_a_lone_request_with_later_ones(
    model: LoadedModel, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris_data

    async def main(batcher: Batcher) -> list[Any]:
        first = asyncio.ensure_future(batcher.predict(model.to_batch(X.iloc[[0]]), ["predictions"]))
        await asyncio.sleep(0.005)
        second = asyncio.ensure_future(
            batcher.predict(model.to_batch(X.iloc[[1]]), ["predictions"])
        )
        return list(await asyncio.gather(first, second))

    batcher = Batcher(model, BatchingConfig(True, 64, 0.05))
    results = asyncio.run(main(batcher))
    assert batcher.batches == 1
    assert [r["predictions"].tolist() for r in results] == [
        model.predict(X.iloc[[0]]).tolist(),
        model.predict(X.iloc[[1]]).tolist(),
    ]
