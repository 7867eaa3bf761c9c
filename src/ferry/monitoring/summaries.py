"""Aggregates for telemetry, never request data: counts per model and version, errors per
code and latency quantiles, from a server's ``/metrics`` text (cumulative since its start) or
from the prediction log (exactly the window)."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

QUANTILES = (0.5, 0.9, 0.99)
MAX_LATENCIES = 100_000


def summarize_metrics(text: str) -> dict[str, Any]:
    """Requests by status, rows, errors by code and latency per model version."""
    from prometheus_client.parser import text_string_to_metric_families

    requests: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    rows: dict[tuple[str, str], float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    buckets: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("model", ""), labels.get("version", ""))
            if sample.name == "ferry_requests_total":
                requests[key][labels.get("status", "")] += sample.value
            elif sample.name == "ferry_predicted_rows_total":
                rows[key] += sample.value
            elif sample.name == "ferry_errors_total":
                errors[labels.get("code", "")] += sample.value
            elif sample.name == "ferry_request_duration_seconds_bucket":
                buckets[key][float(labels["le"])] += sample.value  # all protocols together
            elif sample.name in (
                "ferry_request_duration_seconds_sum",
                "ferry_request_duration_seconds_count",
            ):
                totals[key][sample.name.rsplit("_", 1)[1]] += sample.value
    versions = []
    for key in sorted(set(requests) | set(rows) | set(buckets)):
        by_status = {status: int(count) for status, count in sorted(requests[key].items())}
        count = totals[key].get("count", 0.0)
        entry: dict[str, Any] = {
            "model": key[0],
            "version": key[1],
            "requests": sum(by_status.values()),
            "requests_by_status": by_status,
            "server_errors": sum(n for s, n in by_status.items() if s.startswith("5")),
            "client_errors": sum(n for s, n in by_status.items() if s.startswith("4")),
            "rows": int(rows.get(key, 0.0)),
            "latency_mean_seconds": totals[key]["sum"] / count if count else None,
        }
        for q in QUANTILES:
            entry[f"latency_p{round(q * 100)}_seconds"] = histogram_quantile(q, buckets[key])
        versions.append(entry)
    return {
        "note": "counters are cumulative since each server process started",
        "versions": versions,
        "errors_by_code": {code: int(n) for code, n in sorted(errors.items())},
    }


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """Prometheus' estimate: linear within the bucket holding the q-th observation."""
    if not cumulative:
        return None
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its upper bound is all we know
            inside = count - below
            share = (rank - below) / inside if inside else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def summarize_log(engine: Engine, since: datetime, until: datetime) -> dict[str, Any]:
    """The prediction log's window per model version: requests by status, rows, errors by
    code and latency quantiles (over the last MAX_LATENCIES requests of each)."""
    import numpy as np

    from ferry.monitoring.predlog.codec import META
    from ferry.monitoring.predlog.store import PredictionStore

    status_at, code_at, rows_at, latency_at = (
        META.index(name) for name in ("status", "error_code", "rows", "latency")
    )
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    latencies: dict[tuple[str, str], deque[float]] = {}
    errors: dict[str, int] = defaultdict(int)
    for model, version, meta in PredictionStore(engine).iter_meta(since, until):
        entry = versions.get((model, version))
        if entry is None:
            entry = versions[model, version] = {
                "model": model,
                "version": version,
                "requests": 0,
                "rows": 0,
                "requests_by_status": defaultdict(int),
            }
            latencies[model, version] = deque(maxlen=MAX_LATENCIES)
        entry["requests"] += 1
        entry["rows"] += meta[rows_at]
        entry["requests_by_status"][str(meta[status_at])] += 1
        if meta[code_at]:
            errors[meta[code_at]] += 1
        latencies[model, version].append(meta[latency_at])
    for key, entry in versions.items():
        seconds = np.asarray(latencies[key], dtype=np.float64)
        by_status = entry["requests_by_status"] = dict(sorted(entry["requests_by_status"].items()))
        entry["server_errors"] = sum(n for s, n in by_status.items() if s.startswith("5"))
        entry["client_errors"] = sum(n for s, n in by_status.items() if s.startswith("4"))
        entry["latency_mean_seconds"] = float(seconds.mean()) if seconds.size else None
        for q in QUANTILES:
            value = float(np.quantile(seconds, q)) if seconds.size else None
            entry[f"latency_p{round(q * 100)}_seconds"] = value
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "versions": [versions[key] for key in sorted(versions)],
        "errors_by_code": dict(sorted(errors.items())),
    }
