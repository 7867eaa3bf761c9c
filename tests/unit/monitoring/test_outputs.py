"""Output metrics: folded in bulk, the same numbers observe() per value would give."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from ferry.db.events import PredictionEvent
from ferry.monitoring.metrics import VALUE_BUCKETS, ServingMetrics
from ferry.monitoring.outputs import OutputMetrics, observe_many


def test_observe_many_equals_observe_per_value() -> None:
    values = np.random.default_rng(0).normal(0, 300, 5000)
    values[:3] = [0.0, VALUE_BUCKETS[5], np.nan]  # on a bound, and NaN (skipped by both)
    one, bulk = CollectorRegistry(), CollectorRegistry()
    slow = Histogram("v", "v", buckets=VALUE_BUCKETS, registry=one)
    fast = Histogram("v", "v", buckets=VALUE_BUCKETS, registry=bulk)
    for value in values[np.isfinite(values)]:
        slow.observe(float(value))
    observe_many(fast, values)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples(one) == pytest.approx(samples(bulk), rel=1e-12)
    assert (
        len(samples(one)) == len(VALUE_BUCKETS) + 2
    )  # buckets, +Inf and count (no _sum: the buckets go negative)


def event(
    model: str, outputs: dict[str, np.ndarray] | None, error: str | None = None
) -> PredictionEvent:
    return PredictionEvent("r", model, "1", "native", 200 if error is None else 422,
                           0 if outputs is None else len(next(iter(outputs.values()))), 0.001,
                           time.time(), error_code=error, outputs=outputs)  # fmt: skip


def test_classes_values_and_errors_are_counted() -> None:
    metrics = ServingMetrics()
    observer = OutputMetrics(metrics, flush_seconds=3600)
    observer.observe(event("clf", {"predictions": np.array(["a", "b", "a"], dtype=object)}))
    observer.observe(event("clf", {"predictions": np.array(["a"], dtype=object)}))
    observer.observe(event("reg", {"predictions": np.array([1.5, -3.0])}))
    observer.observe(event("clf", None, error="missing_column"))
    observer.drain()
    registry = metrics.registry
    assert registry is not None
    sample = registry.get_sample_value
    assert (
        sample("ferry_predicted_classes_total", {"model": "clf", "version": "1", "label": "a"}) == 3
    )
    assert (
        sample("ferry_predicted_classes_total", {"model": "clf", "version": "1", "label": "b"}) == 1
    )
    assert sample("ferry_prediction_values_count", {"model": "reg", "version": "1"}) == 2
    bucket = {"model": "reg", "version": "1", "le": "-2.5"}
    assert sample("ferry_prediction_values_bucket", bucket) == 1  # -3.0
    assert (
        sample(
            "ferry_model_errors_total", {"model": "clf", "version": "1", "code": "missing_column"}
        )
        == 1
    )
    observer.close()


def test_every_kind_of_label_is_counted_exactly() -> None:
    """Small integers (one bincount), large and negative integers, booleans, strings and
    one-row answers all give the counts a plain Counter would."""
    metrics = ServingMetrics()
    observer = OutputMetrics(metrics, flush_seconds=3600)
    rng = np.random.default_rng(1)
    answers = {
        "small": [rng.integers(0, 3, n) for n in (1000, 1, 7)],
        "wide": [rng.choice(np.array([-3, 5000, 9999]), 500), np.array([70_000])],
        "flags": [rng.integers(0, 2, 40).astype(bool), np.array([True])],
        "names": [rng.choice(np.array(["setosa", "virginica"]), 300), np.array(["setosa"])],
        "matrix": [rng.integers(0, 3, (50, 2))],  # first column counted
        "empty": [np.array([], dtype=np.int64), np.empty((0, 3))],
    }
    for model, arrays in answers.items():
        for array in arrays:
            observer.observe(event(model, {"predictions": array}))
    observer.drain()
    registry = metrics.registry
    assert registry is not None
    for model, arrays in answers.items():
        expected: dict[str, int] = {}
        for array in arrays:
            column = array.reshape(len(array), -1)[:, 0] if array.size else array[:0]
            for value in column.tolist():
                expected[str(value)] = expected.get(str(value), 0) + 1
        counted = {
            s.labels["label"]: s.value
            for metric in registry.collect()
            for s in metric.samples
            if s.name == "ferry_predicted_classes_total" and s.labels["model"] == model
        }
        assert counted == expected, model
    observer.close()


def test_tallies_hold_no_answers_and_fold_across_flushes() -> None:
    """Memory does not grow with the answers (only a count per label), and counts add up
    over several flushes, single floats included."""
    metrics = ServingMetrics()
    observer = OutputMetrics(metrics, flush_seconds=3600)
    for _ in range(3):
        for _ in range(1000):
            observer.observe(event("reg", {"predictions": np.array([2.0])}))
        observer.observe(event("reg", {"predictions": np.array([2.0, np.inf, np.nan])}))
        observer.observe(event("clf", {"predictions": np.arange(1000) % 3}))
        assert len(observer._tallies["clf", "1"].classes) == 3
        observer.drain()
    registry = metrics.registry
    assert registry is not None
    sample = registry.get_sample_value
    assert sample("ferry_prediction_values_count", {"model": "reg", "version": "1"}) == 3003
    labels = {"model": "clf", "version": "1", "label": "0"}
    assert sample("ferry_predicted_classes_total", labels) == 3 * 334
    observer.close()
