"""Live performance (concept drift): feedback joined with the prediction log, per version.

Classification: accuracy and macro F1 (labels: every class seen in truth or predictions, as
scikit-learn's ``f1_score(average="macro")``). Regression: MAE and RMSE. Computed over a
rolling window of prediction time; a metric past its threshold (with at least
``min_samples`` labeled rows) raises an alert once, when it crosses, to every hook.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ferry.errors import ConfigError, InvalidRequest
from ferry.monitoring.predlog.records import Labeled

if TYPE_CHECKING:
    from ferry.monitoring.predlog.store import PredictionStore

log = logging.getLogger(__name__)

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
# accuracy/f1 alert when they fall below their threshold; mae/rmse when they rise above it
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mae": False, "rmse": False}


@dataclass(frozen=True, slots=True)
class Performance:
    model: str
    version: str
    task: Task
    n: int  # labeled rows
    requests: int  # labeled requests
    metrics: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "n": self.n,
            "requests": self.requests,
            **self.metrics,
        }


@dataclass(frozen=True, slots=True)
class PerformanceAlert:
    model: str
    version: str
    metric: str
    value: float
    threshold: float
    n: int
    window_seconds: float
    at: datetime

    @property
    def message(self) -> str:
        side = "below" if HIGHER_IS_BETTER[self.metric] else "above"
        return (
            f"{self.model} version {self.version}: {self.metric} {self.value:.4g} is {side} "
            f"the threshold {self.threshold:g} over the last {self.window_seconds:g} s "
            f"({self.n} labeled rows)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "performance",
            "model": self.model,
            "version": self.version,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "n": self.n,
            "window_seconds": self.window_seconds,
            "at": self.at.isoformat(),
            "message": self.message,
        }


AlertHook = Callable[[PerformanceAlert], None]


def check_thresholds(thresholds: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(thresholds) - set(HIGHER_IS_BETTER))
    if unknown:
        raise ConfigError(
            f"performance threshold {unknown[0]!r} is unknown; use {sorted(HIGHER_IS_BETTER)}",
            field="performance_thresholds",
        )
    return dict(thresholds)


# --- metrics ----------------------------------------------------------------------------------
def predicted_values(outputs: dict[str, list[Any]] | None) -> list[Any]:
    """The values feedback is compared with: the ``predictions`` output (else the first)."""
    if not outputs:
        return []
    values = outputs.get("predictions")
    if values is None:
        values = next(iter(outputs.values()))
    return [v[0] if isinstance(v, list) and v else v for v in values]


def infer_task(predictions: Sequence[Any]) -> Task:
    """Floats are a regression's values; labels (ints, strings, bools) a classifier's."""
    numeric = [v for v in predictions if v is not None]
    if numeric and all(isinstance(v, float) for v in numeric):
        return "regression"
    return "classification"


def classification_metrics(truth: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
    pairs = list(zip(truth, predicted, strict=True))
    correct = sum(1 for t, p in pairs if t == p)
    tp: Counter[Any] = Counter()
    fp: Counter[Any] = Counter()
    fn: Counter[Any] = Counter()
    for t, p in pairs:
        if t == p:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    labels = set(truth) | set(predicted)
    scores = []
    for label in labels:
        denominator = 2 * tp[label] + fp[label] + fn[label]
        scores.append(2 * tp[label] / denominator if denominator else 0.0)
    return {
        "accuracy": correct / len(pairs),
        "f1": sum(scores) / len(scores) if scores else 0.0,
    }


def regression_metrics(truth: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    errors = [float(p) - float(t) for t, p in zip(truth, predicted, strict=True)]
    return {
        "mae": sum(abs(e) for e in errors) / len(errors),
        "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
    }


def compute(labeled: Iterable[Labeled], task: Task | None = None) -> list[Performance]:
    """Performance per (model, version) of labeled predictions."""
    grouped: dict[tuple[str, str], tuple[list[Any], list[Any], int]] = {}
    for item in labeled:
        key = (item.prediction.model, item.prediction.version)
        truths, predictions, requests = grouped.get(key, ([], [], 0))
        predicted = predicted_values(item.prediction.outputs)
        if len(predicted) != len(item.truth):  # a truth that no longer fits: left out
            continue
        truths.extend(item.truth)
        predictions.extend(predicted)
        grouped[key] = (truths, predictions, requests + 1)
    results = []
    for (model, version), (truths, predictions, requests) in sorted(grouped.items()):
        kind = task or infer_task(predictions)
        if kind == "regression":
            metrics = regression_metrics(truths, predictions)
        else:
            metrics = classification_metrics(truths, predictions)
        results.append(Performance(model, version, kind, len(truths), requests, metrics))
    return results


def evaluate(
    store: PredictionStore,
    model: str,
    window: timedelta,
    *,
    version: str | None = None,
    task: Task | None = None,
    now: datetime | None = None,
) -> list[Performance]:
    """Performance of ``model``'s versions on predictions made in the last ``window``."""
    if task is not None and task not in TASKS:
        raise InvalidRequest(f"task {task!r} is unknown; use {list(TASKS)}", field="task")
    until = now or datetime.now(UTC)
    return compute(store.labeled(model, version, until - window, None), task)


# --- alerts -----------------------------------------------------------------------------------
def log_alert(alert: PerformanceAlert) -> None:
    log.warning("performance alert: %s", alert.message, extra={"alert": alert.to_json()})


@dataclass
class PerformanceMonitor:
    """Evaluates a model's performance (at most every ``interval`` seconds unless forced),
    exports it as gauges through ``export`` and alerts hooks when a threshold is crossed."""

    thresholds: dict[str, float]
    window: timedelta
    min_samples: int = 20
    interval: float = 5.0
    hooks: list[AlertHook] = field(default_factory=lambda: [log_alert])
    export: Callable[[Performance], None] | None = None
    _last: dict[str, float] = field(default_factory=dict)
    _breached: set[tuple[str, str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_hook(self, hook: AlertHook) -> None:
        self.hooks.append(hook)

    def check(
        self, store: PredictionStore, model: str, *, force: bool = False
    ) -> list[Performance] | None:
        """Re-evaluate ``model`` (None when it was evaluated less than ``interval`` ago)."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last.get(model, -math.inf) < self.interval:
                return None
            self._last[model] = now
        results = evaluate(store, model, self.window)
        for performance in results:
            if self.export is not None:
                self.export(performance)
            self._alert(performance)
        return results

    def _alert(self, performance: Performance) -> None:
        for metric, threshold in self.thresholds.items():
            value = performance.metrics.get(metric)
            if value is None or performance.n < self.min_samples:
                continue
            key = (performance.model, performance.version, metric)
            bad = value < threshold if HIGHER_IS_BETTER[metric] else value > threshold
            with self._lock:
                crossed = bad and key not in self._breached
                if bad:
                    self._breached.add(key)
                else:
                    self._breached.discard(key)
            if not crossed:
                continue
            alert = PerformanceAlert(
                performance.model,
                performance.version,
                metric,
                value,
                threshold,
                performance.n,
                self.window.total_seconds(),
                datetime.now(UTC),
            )
            for hook in self.hooks:
                try:
                    hook(alert)
                except Exception:  # one broken hook (a webhook down) must not stop the others
                    log.exception("performance alert hook %r failed", hook)
