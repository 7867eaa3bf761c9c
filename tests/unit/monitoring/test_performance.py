"""Live performance: metrics equal scikit-learn's, alerts fire once when a threshold is crossed."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

from ferry.db.events import PredictionEvent
from ferry.errors import ConfigError
from ferry.model.signature import Batch
from ferry.monitoring.performance import (
    PerformanceAlert,
    PerformanceMonitor,
    check_thresholds,
    classification_metrics,
    compute,
    regression_metrics,
)
from ferry.monitoring.predlog import Feedback, Labeled, LoggedPrediction, PredictionStore
from ferry.monitoring.predlog.codec import event_entry


def record(request_id: str, version: str, predictions: list[object]) -> LoggedPrediction:
    return LoggedPrediction(
        request_id, "m", version, "native", 200, None, len(predictions), 0.001, None,
        datetime.now(UTC), {"x": [0] * len(predictions)}, {"predictions": predictions},
    )  # fmt: skip


def test_classification_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    truth = rng.choice(["cat", "dog", "bird", "fish"], 300).tolist()
    predicted = [t if rng.random() < 0.7 else "dog" for t in truth]
    predicted[0] = "unseen"  # a label only the model answered still counts for macro F1
    got = classification_metrics(truth, predicted)
    assert got["accuracy"] == accuracy_score(truth, predicted)
    assert got["f1"] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-12)


def test_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(100, 20, 500).tolist()
    predicted = (np.array(truth) + rng.normal(0, 5, 500)).tolist()
    got = regression_metrics(truth, predicted)
    assert got["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-12)
    rmse = math.sqrt(mean_squared_error(truth, predicted))
    assert got["rmse"] == pytest.approx(rmse, rel=1e-12)


def test_compute_groups_versions_and_infers_the_task() -> None:
    labeled = [
        Labeled(record("a", "1", [1, 0]), [1, 1]),
        Labeled(record("b", "2", [2.5]), [2.0]),
        Labeled(record("c", "1", [0]), [0]),
        Labeled(record("d", "1", [0]), [0, 1]),  # a truth that does not fit: left out
    ]
    one, two = compute(labeled)
    assert (one.version, one.task, one.n, one.requests) == ("1", "classification", 3, 2)
    assert one.metrics["accuracy"] == 2 / 3
    assert (two.version, two.task, two.metrics) == ("2", "regression", {"mae": 0.5, "rmse": 0.5})


def test_monitor_alerts_once_per_crossing(tmp_path: Path) -> None:
    store = PredictionStore.open(f"sqlite:///{tmp_path / 'log.db'}", migrate=True)
    alerts: list[PerformanceAlert] = []
    monitor = PerformanceMonitor(
        {"accuracy": 0.8}, timedelta(hours=1), min_samples=4, interval=0.0, hooks=[alerts.append]
    )
    now = datetime.now(UTC)

    def logged(request_id: str, prediction: int, truth: int) -> None:
        store.append([event_entry(PredictionEvent(
            request_id, "m", "1", "native", 200, 1, 0.001, now.timestamp(),
            inputs=Batch({"x": np.zeros(1)}, 1),
            outputs={"predictions": np.array([prediction])},
        ))])  # fmt: skip
        store.add_feedback([Feedback(request_id, "m", "1", [truth], now)])

    for i in range(3):
        logged(f"bad{i}", 1, 0)
    monitor.check(store, "m")
    assert alerts == []  # 3 labeled rows: fewer than min_samples
    logged("bad3", 1, 0)
    (result,) = monitor.check(store, "m") or []
    assert result.metrics["accuracy"] == 0.0
    monitor.check(store, "m")
    assert [(a.metric, a.value, a.threshold, a.n) for a in alerts] == [("accuracy", 0.0, 0.8, 4)]
    assert "below the threshold 0.8" in alerts[0].message
    for i in range(40):  # recovers, then falls again: a second alert
        logged(f"good{i}", 1, 1)
    monitor.check(store, "m")
    for i in range(40):
        logged(f"worse{i}", 0, 1)
    monitor.check(store, "m")
    assert len(alerts) == 2
    store.close()


def test_unknown_threshold_is_refused() -> None:
    with pytest.raises(ConfigError, match="'precision'"):
        check_thresholds({"precision": 0.5})
