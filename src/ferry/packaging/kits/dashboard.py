"""The Ferry Grafana dashboard: one panel per serving metric of ``ferry.monitoring.metrics``.

Queries name the series as Prometheus exposes them (counters end in ``_total``, histograms in
``_bucket``/``_sum``/``_count``); a test scrapes a real server and checks every one exists.
"""

from __future__ import annotations

from typing import Any

DATASOURCE_UID = "ferry-prometheus"
DASHBOARD_UID = "ferry-serving"
RATE = "[$__rate_interval]"

# (title, unit, [(query, legend)], panel type)
Panel = tuple[str, str, list[tuple[str, str]], str]

PANELS: list[Panel] = [
    (
        "Requests per second",
        "reqps",
        [
            (
                f"sum by (model, version, protocol) (rate(ferry_requests_total{RATE}))",
                "{{model}} v{{version}} {{protocol}}",
            )
        ],
        "timeseries",
    ),
    (
        "Error ratio (4xx and 5xx answers)",
        "percentunit",
        [
            (
                f'sum by (model) (rate(ferry_requests_total{{status=~"[45].."}}{RATE})) / '
                f"sum by (model) (rate(ferry_requests_total{RATE}))",
                "{{model}}",
            )
        ],
        "timeseries",
    ),
    (
        "Latency",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le, model) "
                f"(rate(ferry_request_duration_seconds_bucket{RATE})))",
                f"p{int(q * 100)} {{{{model}}}}",
            )
            for q in (0.5, 0.95, 0.99)
        ],
        "timeseries",
    ),
    (
        "Rows predicted per second",
        "short",
        [
            (
                f"sum by (model, version) (rate(ferry_predicted_rows_total{RATE}))",
                "{{model}} v{{version}}",
            )
        ],
        "timeseries",
    ),
    (
        "Errors by code",
        "short",
        [(f"sum by (code) (rate(ferry_errors_total{RATE}))", "{{code}}")],
        "timeseries",
    ),
    (
        "Requests per batch (adaptive batching)",
        "short",
        [
            (
                f"sum by (model) (rate(ferry_batch_requests_sum{RATE})) / "
                f"sum by (model) (rate(ferry_batch_requests_count{RATE}))",
                "mean {{model}}",
            ),
            (
                "histogram_quantile(0.95, sum by (le, model) "
                f"(rate(ferry_batch_requests_bucket{RATE})))",
                "p95 {{model}}",
            ),
        ],
        "timeseries",
    ),
    (
        "Loaded models",
        "short",
        [("max by (instance) (ferry_loaded_models)", "{{instance}}")],
        "stat",
    ),
    (
        "Worker memory",
        "bytes",
        [("sum by (instance, kind) (ferry_worker_memory_bytes)", "{{instance}} {{kind}}")],
        "timeseries",
    ),
]


def dashboard(title: str = "Ferry serving") -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (provisioned from a file, so no ``id``)."""
    panels = []
    for index, (name, unit, queries, kind) in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "title": name,
                "type": kind,
                "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
                "targets": [
                    {
                        "refId": chr(ord("A") + n),
                        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for n, (expr, legend) in enumerate(queries)
                ],
            }
        )
    return {
        "uid": DASHBOARD_UID,
        "title": title,
        "tags": ["ferry"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def queries() -> list[str]:
    return [expr for _, _, targets, _ in PANELS for expr, _ in targets]
