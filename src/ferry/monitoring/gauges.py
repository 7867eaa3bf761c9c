"""Drift results as Prometheus gauges for ``/metrics`` (``ferry server``).

The gauges are read from the stored drift results (and, in monitoring/sites.py, from the
imported telemetry), not kept in process memory: every worker
answers the same, whichever ran the drift job, and a restart loses nothing. The families are
built per scrape (no prometheus_client value objects, so nothing is written to the
multiprocess folder) from a cache refreshed at most every ``ttl`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

import anyio.to_thread
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ferry.errors import FerryError
from ferry.monitoring.storage import DriftRecord, MonitoringStore

log = logging.getLogger(__name__)

FEATURE_GAUGES: dict[str, tuple[str, str]] = {
    # metric name: (test in the report, help)
    "ferry_drift_psi": ("psi", "Population stability index of a numeric feature, last run."),
    "ferry_drift_ks_statistic": ("ks", "Kolmogorov-Smirnov statistic of a numeric feature."),
    "ferry_drift_js_distance": ("js", "Jensen-Shannon distance of a categorical feature."),
    "ferry_drift_chi2_pvalue": ("chi2", "Chi-squared test p-value of a categorical feature."),
    "ferry_drift_missing_rate_change": ("missing", "Change in a feature's missing rate."),
    "ferry_drift_unseen_rate": ("unseen", "Share of live values not in the reference."),
}
METRIC_NAMES = (
    *FEATURE_GAUGES,
    "ferry_drift_feature_drifted",
    "ferry_drift_live_rows",
    "ferry_drift_last_run_timestamp_seconds",
)


class DriftCollector(Collector):
    def __init__(self, records: Sequence[DriftRecord]) -> None:
        self.records = records

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_feature = ["model", "version", "feature"]
        families = {
            name: GaugeMetricFamily(name, doc, labels=by_feature)
            for name, (_, doc) in FEATURE_GAUGES.items()
        }
        drifted = GaugeMetricFamily(
            "ferry_drift_feature_drifted",
            "1 when a feature drifted in the last run.",
            labels=by_feature,
        )
        rows = GaugeMetricFamily(
            "ferry_drift_live_rows", "Live rows in the last drift run.", labels=["model", "version"]
        )
        last = GaugeMetricFamily(
            "ferry_drift_last_run_timestamp_seconds",
            "When the last drift run of a version finished (Unix time).",
            labels=["model", "version"],
        )
        for record in self.records:
            report, version = record.report, str(record.version)
            rows.add_metric([record.model, version], report.live_rows)
            last.add_metric([record.model, version], report.created_at.timestamp())
            for feature in report.features:
                labels = [record.model, version, feature.name]
                drifted.add_metric(labels, 1.0 if feature.drifted else 0.0)
                for name, (test, _) in FEATURE_GAUGES.items():
                    result = feature.tests.get(test)
                    if result is not None:
                        value = result.pvalue if test == "chi2" else result.statistic
                        families[name].add_metric(labels, value if value is not None else 0.0)
        yield from families.values()
        yield from (drifted, rows, last)


def render_collector(collector: Collector) -> bytes:
    """The Prometheus text of one collector's families (a registry of its own, per scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


def render_drift_metrics(records: Sequence[DriftRecord]) -> bytes:
    return render_collector(DriftCollector(records))


class StoredGauges:
    """An async ``/metrics`` source: ``render(store)`` in a thread, cached for ``ttl`` seconds."""

    def __init__(
        self,
        store: Callable[[], MonitoringStore],
        render: Callable[[MonitoringStore], bytes],
        ttl: float = 5.0,
    ) -> None:
        self._store = store
        self._render = render
        self._ttl = ttl
        self._cached = b""
        self._at = -float("inf")

    async def __call__(self) -> bytes:
        if time.monotonic() - self._at > self._ttl:
            try:
                self._cached = await anyio.to_thread.run_sync(lambda: self._render(self._store()))
            except FerryError as exc:  # the database is down: /metrics answers all the same,
                # these gauges as last read (tried again after ttl), serving's own as they are
                log.warning("stored gauges kept as last read: %s", exc.message)
            self._at = time.monotonic()
        return self._cached


class DriftGauges(StoredGauges):
    """The ``ferry_drift_*`` gauges of every version's newest drift report."""

    def __init__(self, store: Callable[[], MonitoringStore], ttl: float = 5.0) -> None:
        super().__init__(store, lambda opened: render_drift_metrics(opened.latest_drift()), ttl)
