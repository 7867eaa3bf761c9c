"""Distribution of what models answer, and errors per model, as Prometheus metrics.

An observer: ``observe`` appends to a bounded deque (no work on the request's path); a
thread drains it every second and updates the metrics in bulk: one bincount per model
version for class counts, one searchsorted for the regression histogram (updating the
histogram's buckets directly, since prometheus_client has no bulk observe and a call per
row would cost a millisecond per 1000-row request).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from ferry.monitoring.events import PredictionEvent
from ferry.monitoring.metrics import ServingMetrics

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_QUEUE = 100_000
# rows waiting for the thread, all requests together: under saturation the thread gets little
# of the GIL, and a bound by entries alone let 1000-row outputs pile up (503 MB RSS in the
# benchmark); past it, answers go uncounted rather than held
MAX_QUEUED_ROWS = 200_000
MAX_CLASSES = 100  # distinct labels counted per model version; the rest go to "_other"
OTHER = "_other"

Entry = tuple[str, str, str | None, np.ndarray | None]


class OutputMetrics:
    """A PredictionObserver filling ``ferry_prediction_values``, ``ferry_predicted_classes``
    and ``ferry_model_errors``."""

    def __init__(self, metrics: ServingMetrics, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.metrics = metrics
        self.flush_seconds = flush_seconds
        self._queue: deque[Entry] = deque()
        self._queued_rows = 0
        self.uncounted = 0  # answers left out because the queue was full
        self._classes: dict[tuple[str, str], set[str]] = {}
        self._pid = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def observe(self, event: PredictionEvent) -> None:
        if event.model == "-":
            return
        if self._pid != os.getpid():
            self._start()
        values = _predictions(event.outputs)
        rows = values.shape[0] if values is not None and values.ndim else 0
        if len(self._queue) >= MAX_QUEUE or self._queued_rows + rows > MAX_QUEUED_ROWS:
            self.uncounted += 1
            return
        self._queued_rows += rows
        self._queue.append((event.model, event.version, event.error_code, values))

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = deque()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="ferry-outputs", daemon=True)
            self._pid = os.getpid()
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.drain()
        self.drain()

    def drain(self) -> None:
        """Fold what is queued into the metrics (the thread calls this; tests may too)."""
        predictions: dict[tuple[str, str], list[np.ndarray]] = {}
        while self._queue:
            model, version, error, values = self._queue.popleft()
            if error is not None:
                self.metrics.model_errors.labels(model, version, error).inc()
            if values is not None:
                self._queued_rows -= values.shape[0] if values.ndim else 0
                predictions.setdefault((model, version), []).append(values)
        if not self._queue:
            self._queued_rows = 0  # observe() and drain() race on the count: re-anchor it
        for (model, version), arrays in predictions.items():
            try:
                self._record(model, version, arrays)
            except Exception:  # the thread's boundary: an odd output must not stop the metrics
                log.exception("output metrics for %s:%s failed", model, version)

    def _record(self, model: str, version: str, arrays: list[np.ndarray]) -> None:
        values = np.concatenate([a.reshape(len(a), -1)[:, 0] for a in arrays if a.ndim >= 1])
        if values.dtype.kind == "f":
            observe_many(self.metrics.prediction_values.labels(model, version), values)
            return
        labels, counts = np.unique(values.astype(str), return_counts=True)
        seen = self._classes.setdefault((model, version), set())
        for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
            if label not in seen and len(seen) >= MAX_CLASSES:
                label = OTHER
            seen.add(label)
            self.metrics.predicted_classes.labels(model, version, label).inc(count)

    def close(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            self._stop.set()
            self._thread.join(timeout=10)


def _predictions(outputs: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
    """The output whose distribution is recorded: ``predictions``, else the first one."""
    if not outputs:
        return None
    values = outputs.get("predictions")
    if values is None:
        values = next(iter(outputs.values()))
    return np.asarray(values)


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every finite ``v``, in one pass: bucket counts from
    searchsorted (``v <= bound`` as observe does), then one increment per bucket."""
    values = values[np.isfinite(values)]
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for index, count in enumerate(counts.tolist()):
        if count:
            histogram._buckets[index].inc(count)
    histogram._sum.inc(float(values.sum()))
