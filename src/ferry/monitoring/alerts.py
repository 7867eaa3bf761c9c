"""Prometheus alerting rules and the Grafana dashboard, for ``ferry monitoring export``.

The rules are built here so that the drift rule uses the server's PSI threshold; the
dashboard is a JSON file shipped in ``ferry/monitoring/dashboards``. Both use only the metric
names Ferry exports (monitoring/metrics.py and the drift gauges in monitoring/gauges.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DASHBOARD_FILE = "ferry-overview.json"
RULES_FILE = "ferry-alerts.yml"


@dataclass(frozen=True, slots=True)
class AlertLimits:
    error_ratio: float = 0.05  # share of 5xx answers over 5 minutes
    latency_p99_seconds: float = 0.5
    drift_psi: float = 0.2
    down_for: str = "1m"
    job: str = "ferry"  # the Prometheus scrape job of the Ferry servers


def alert_rules(limits: AlertLimits) -> dict[str, Any]:
    """A Prometheus rule file (``groups:``) as a mapping."""
    window = "5m"
    total = f"sum by (model, version) (rate(ferry_requests_total[{window}]))"
    errors = f'sum by (model, version) (rate(ferry_requests_total{{status=~"5.."}}[{window}]))'
    p99 = (
        "histogram_quantile(0.99, sum by (le, model, version) "
        f"(rate(ferry_request_duration_seconds_bucket[{window}])))"
    )
    rules: list[dict[str, Any]] = [
        {
            "alert": "FerryHighErrorRate",
            "expr": f"({errors}) / ({total}) > {limits.error_ratio}",
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "{{ $labels.model }} v{{ $labels.version }} answers 5xx to "
                "{{ $value | humanizePercentage }} of requests",
                "description": f"More than {limits.error_ratio:.0%} of prediction requests "
                "failed with a server error over 5 minutes.",
            },
        },
        {
            "alert": "FerryHighLatencyP99",
            "expr": f"{p99} > {limits.latency_p99_seconds}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.model }} v{{ $labels.version }} p99 latency is "
                "{{ $value | humanizeDuration }}",
                "description": f"The 99th percentile of prediction latency is above "
                f"{limits.latency_p99_seconds}s.",
            },
        },
        {
            "alert": "FerryDataDrift",
            "expr": f"ferry_drift_psi > {limits.drift_psi}",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.model }} v{{ $labels.version }}: feature "
                '{{ $labels.feature }} drifted (PSI {{ $value | printf "%.2f" }})',
                "description": "The live inputs of this feature no longer look like the "
                f"reference data (population stability index above {limits.drift_psi}); see "
                "`ferry drift` for the report.",
            },
        },
        {
            "alert": "FerryModelServerDown",
            "expr": f'up{{job="{limits.job}"}} == 0',
            "for": limits.down_for,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Ferry server {{ $labels.instance }} is down",
                "description": "Prometheus cannot scrape /metrics of this Ferry server.",
            },
        },
        {
            "alert": "FerryNoModelLoaded",
            "expr": f'sum by (instance) (ferry_loaded_models{{job="{limits.job}"}}) == 0',
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Ferry server {{ $labels.instance }} has no model loaded",
                "description": "The server is up but serves no model.",
            },
        },
    ]
    return {"groups": [{"name": "ferry", "rules": rules}]}


def dashboard_json() -> str:
    """The Grafana dashboard shipped in the package."""
    return resources.files("ferry.monitoring.dashboards").joinpath(DASHBOARD_FILE).read_text()


def alert_rules_text(limits: AlertLimits) -> str:
    """The rule file as written (``ferry monitoring export``, the compose deploy kit)."""
    text = yaml.safe_dump(alert_rules(limits), sort_keys=False, width=100)
    return f"# Prometheus alerting rules for Ferry (ferry monitoring export)\n{text}"


def export_monitoring(out: Path, limits: AlertLimits) -> list[Path]:
    """Write the rule file and the dashboard into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    rules = out / RULES_FILE
    rules.write_text(alert_rules_text(limits))
    dashboard = out / DASHBOARD_FILE
    dashboard.write_text(dashboard_json())
    return [rules, dashboard]
