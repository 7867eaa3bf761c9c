"""The prediction log, output metrics, feedback and performance of an app.

Built by create_app() (``Features.monitoring``) before any worker forks: observers for the
serving context, and the state the monitoring routes use. Threads
and database connections are made lazily in each worker process, never in the parent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request

from ferry.config.settings import Settings
from ferry.db.events import PredictionObserver
from ferry.errors import PredictionLogDisabled
from ferry.forks import reset_after_fork
from ferry.monitoring.metrics import ServingMetrics
from ferry.monitoring.outputs import OutputMetrics
from ferry.monitoring.performance import (
    AlertHook,
    Performance,
    PerformanceMonitor,
    check_thresholds,
    log_alert,
)
from ferry.monitoring.predlog import LogPolicy, PredictionLog, parse_duration
from ferry.server.serving.catalog import RegistryModels
from ferry.server.serving.context import ServingContext

if TYPE_CHECKING:  # SQLAlchemy: imported only when a store is opened
    from ferry.monitoring.predlog.store import PredictionStore

log = logging.getLogger(__name__)


@dataclass
class Monitoring:
    """Per-app monitoring state, reached through ``monitoring_of(request)``."""

    database_url: str
    policy: LogPolicy
    metrics: ServingMetrics
    monitor: PerformanceMonitor
    log: PredictionLog | None = None
    _store: PredictionStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        reset_after_fork(self, "_forget")

    def _forget(self) -> None:
        """In a forked worker: the parent's pooled connections must not be shared."""
        self._store = None
        self._lock = threading.Lock()

    def store(self) -> PredictionStore:
        """This process's connection pool to the log (made after fork, on first use)."""
        from ferry.monitoring.predlog.store import PredictionStore

        with self._lock:
            if self._store is None:
                self._store = PredictionStore.open(self.database_url)
            return self._store

    def logged_store(self) -> PredictionStore:
        """The store, when this server logs predictions (else a 409 saying how to turn it on)."""
        if self.log is None:
            raise PredictionLogDisabled(
                "this server does not log predictions; start it with --log-predictions all "
                "(or FERRY_PREDICTION_LOG=all)"
            )
        return self.store()

    def export(self, performance: Performance) -> None:
        gauge = self.metrics.performance
        for metric, value in (*performance.metrics.items(), ("n", float(performance.n))):
            gauge.labels(performance.model, performance.version, metric).set(value)


def build_monitoring(
    settings: Settings,
    context: ServingContext,
    *,
    prediction_log: str,
    alert_hooks: Sequence[AlertHook] = (),
) -> tuple[Monitoring, list[PredictionObserver]]:
    """The monitoring of an app serving ``context`` and the observers it adds (output
    metrics, the prediction log when ``prediction_log`` is all or a sample fraction);
    create_app() calls it and adds the monitoring routes."""
    from ferry.config.paths import database_url

    metrics = context.metrics
    policy = LogPolicy.parse(prediction_log)
    monitor = PerformanceMonitor(
        thresholds=check_thresholds(settings.performance_thresholds),
        window=parse_duration(settings.performance_window, "performance_window"),
        min_samples=settings.performance_min_samples,
        hooks=[log_alert, *alert_hooks],
    )
    monitoring = Monitoring(database_url(settings), policy, metrics, monitor)
    monitor.export = monitoring.export
    observers: list[PredictionObserver] = [OutputMetrics(metrics)]
    if policy.enabled:
        monitoring.log = PredictionLog(
            monitoring.store,
            policy=policy,
            max_queue=settings.prediction_log_queue,
            dropped=metrics.predlog_dropped,
            written=metrics.predlog_written,
            held=metrics.predlog_held,
            retention=(
                timedelta(days=settings.prediction_log_retention_days)
                if settings.prediction_log_retention_days
                else None
            ),
            buffer_rows=settings.prediction_log_buffer,
            buffer_bytes=settings.prediction_log_buffer_bytes,
            spool_dir=settings.prediction_log_spool_dir
            or settings.home.expanduser() / "spool" / "predictions",
        )
        observers.append(monitoring.log)
    if isinstance(context.models, RegistryModels):  # ferry server: versions load on demand
        context.models.on_load = lambda model, seconds: metrics.model_load_seconds.labels(
            model.name, model.version
        ).set(seconds)
    return monitoring, observers


def monitoring_of(request: Request) -> Monitoring:
    from ferry.server.state import ferry_state

    monitoring = ferry_state(request).monitoring
    assert monitoring is not None  # its routes exist only when monitoring is on
    return monitoring


def resolve_log_setting(option: str | None, settings: Settings, default: str) -> str:
    """--log-predictions, else FERRY_PREDICTION_LOG, else the command's default."""
    return option or settings.prediction_log or default
