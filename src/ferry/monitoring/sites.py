"""Telemetry sites as Prometheus gauges for ``/metrics`` (``ferry server``, our side).

Each site's newest imported bundle (``ferry telemetry import`` or a push) gives: when the site
made it, the end of the window it covers, how many bundles the site sent, and per model
version the requests, client and server errors of that window (from the site's prediction
log, else its ``/metrics``) and whether a drift run of the version drifted. The gauges are
built per scrape from the database (monitoring/gauges.py ``StoredGauges``), so every worker
answers the same. The requests are the bundle window's count, not a running total: a gauge.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ferry.monitoring.gauges import render_collector
from ferry.monitoring.storage import TelemetryImport

SITE = ["site"]
SITE_VERSION = ["site", "model", "version"]
VERSION_GAUGES: dict[str, tuple[str, str]] = {
    # metric name: (field of a version's entry in the bundle, help)
    "ferry_site_requests": (
        "requests",
        "Requests a site's model version answered in the window of its newest bundle.",
    ),
    "ferry_site_client_errors": ("client_errors", "4xx answers in that window."),
    "ferry_site_server_errors": ("server_errors", "5xx answers in that window."),
}
METRIC_NAMES = (
    "ferry_site_last_report_timestamp_seconds",
    "ferry_site_window_end_timestamp_seconds",
    "ferry_site_bundles",
    *VERSION_GAUGES,
    "ferry_site_drifted",
)


def version_counts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-version counts the bundle's headline used: its prediction log's, else its
    ``/metrics``' (as ``ferry telemetry export`` chose them)."""
    for source in ("predictions", "metrics"):
        part = summary.get(source)
        versions = part.get("versions") if isinstance(part, dict) else None
        if isinstance(versions, list) and versions:
            return [v for v in versions if isinstance(v, dict) and "model" in v]
    return []


def drifted_versions(summary: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(model, version) -> drifted, for every version the site listed."""
    flags: dict[tuple[str, str], bool] = {}
    models = summary.get("models")
    for entry in models if isinstance(models, list) else []:
        if isinstance(entry, dict) and "model" in entry and "version" in entry:
            flags[(str(entry["model"]), str(entry["version"]))] = False
    headline = summary.get("summary")
    drifted = headline.get("drifted_versions") if isinstance(headline, dict) else None
    for name in drifted if isinstance(drifted, list) else []:
        model, _, version = str(name).rpartition("/")
        if model:
            flags[(model, version)] = True
    return flags


class SiteCollector(Collector):
    def __init__(self, sites: Sequence[tuple[TelemetryImport, int]]) -> None:
        self.sites = sites

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last = GaugeMetricFamily(
            "ferry_site_last_report_timestamp_seconds",
            "When the site made its newest imported telemetry bundle (Unix time).",
            labels=SITE,
        )
        window_end = GaugeMetricFamily(
            "ferry_site_window_end_timestamp_seconds",
            "The end of the window the site's newest bundle covers (Unix time).",
            labels=SITE,
        )
        bundles = GaugeMetricFamily(
            "ferry_site_bundles", "Telemetry bundles imported from the site.", labels=SITE
        )
        per_version = {
            name: GaugeMetricFamily(name, doc, labels=SITE_VERSION)
            for name, (_, doc) in VERSION_GAUGES.items()
        }
        drifted = GaugeMetricFamily(
            "ferry_site_drifted",
            "1 when a drift run of the site's model version drifted in its newest bundle.",
            labels=SITE_VERSION,
        )
        for item, count in self.sites:
            last.add_metric([item.site], item.created_at.timestamp())
            window_end.add_metric([item.site], item.until.timestamp())
            bundles.add_metric([item.site], count)
            for entry in version_counts(item.summary):
                labels = [item.site, str(entry["model"]), str(entry.get("version", ""))]
                for name, (key, _) in VERSION_GAUGES.items():
                    value = entry.get(key)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        per_version[name].add_metric(labels, float(value))
            for (model, version), flag in sorted(drifted_versions(item.summary).items()):
                drifted.add_metric([item.site, model, version], 1.0 if flag else 0.0)
        yield from (last, window_end, bundles, *per_version.values(), drifted)


def render_site_metrics(sites: Sequence[tuple[TelemetryImport, int]]) -> bytes:
    return render_collector(SiteCollector(sites))
