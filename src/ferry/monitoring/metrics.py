"""Prometheus collectors for serving; one set per app, multiprocess-safe across workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``ferry serve --workers N`` sets it before anything
imports prometheus_client), every worker writes its samples to files in that folder and
/metrics, answered by any worker, adds them up.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# prediction values of regression models: symmetric, roughly log-spaced, so one bucket set
# shows the shape of outputs from fractions to millions
VALUE_BUCKETS = tuple(
    sorted({s * b for s in (-1, 1) for b in (0.01, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100,
                                              250, 500, 1e3, 1e4, 1e5, 1e6)} | {0.0})
)  # fmt: skip
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_ENV)
    return Path(value) if value else None


class ServingMetrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir()
        # in multiprocess mode samples live in files, so the metrics join no registry
        registry = None if self.multiprocess else CollectorRegistry()
        self.registry = registry
        self.requests = Counter(
            "ferry_requests",
            "Prediction requests by model, version, protocol and HTTP status.",
            ["model", "version", "protocol", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "ferry_request_duration_seconds",
            "Time to answer a prediction request, parsing to serialization.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "ferry_predicted_rows",
            "Rows predicted, by model and version.",
            ["model", "version"],
            registry=registry,
        )
        self.errors = Counter(
            "ferry_errors", "Errors answered, by error code.", ["code"], registry=registry
        )
        self.auth_refused = Counter(
            "ferry_auth_refused",
            "Requests the auth layer refused (401, 403, 429), by reason: missing, invalid, "
            "malformed, oversized, expired, revoked, forbidden, rate_limited ...",
            ["reason"],
            registry=registry,
        )
        self.batch_requests = Histogram(
            "ferry_batch_requests",
            "Requests merged into one predict call by adaptive batching.",
            ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.loaded = Gauge(
            "ferry_loaded_models",
            "Models loaded in a worker.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.memory = Gauge(
            "ferry_worker_memory_bytes",
            "Memory of each worker process: rss, pss (its share of pages shared with other "
            "workers) and uss (pages only it holds).",
            ["kind"],
            registry=registry,
            multiprocess_mode="liveall",
        )

        self.model_load_seconds = Gauge(
            "ferry_model_load_seconds",
            "Seconds the last load of each model version took (files to first answer).",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="max",
        )
        # filled by OutputMetrics (monitoring/outputs.py) in a background thread, in bulk
        self.prediction_values = Histogram(
            "ferry_prediction_values",
            "Values predicted by regression models (numeric 'predictions' output), per row.",
            ["model", "version"],
            buckets=VALUE_BUCKETS,
            registry=registry,
        )
        self.predicted_classes = Counter(
            "ferry_predicted_classes",
            "Rows predicted per class by classifiers (label 'predictions' output).",
            ["model", "version", "label"],
            registry=registry,
        )
        self.model_errors = Counter(
            "ferry_model_errors",
            "Errors answered, by model, version and error code.",
            ["model", "version", "code"],
            registry=registry,
        )
        self.predlog_written = Counter(
            "ferry_predlog_written",
            "Requests written to the prediction log.",
            registry=registry,
        )
        self.predlog_dropped = Counter(
            "ferry_predlog_dropped",
            "Requests not logged because the prediction log's queue was full or a write failed.",
            registry=registry,
        )
        self.predlog_held = Gauge(
            "ferry_predlog_held",
            "Requests each worker holds (spooled, or in memory) while the prediction log's "
            "database refuses writes; written once it takes them again.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.feedback = Counter(
            "ferry_feedback",
            "Ground-truth values received for logged predictions, by model and version.",
            ["model", "version"],
            registry=registry,
        )
        self.performance = Gauge(
            "ferry_model_performance",
            "Live performance over the rolling window, from feedback joined with the "
            "prediction log: accuracy, f1 (macro), mae, rmse and n (labeled rows).",
            ["model", "version", "metric"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def observe(
        self, model: str, version: str, protocol: str, status: int, seconds: float, rows: int
    ) -> None:
        self.requests.labels(model, version, protocol, str(status)).inc()
        self.duration.labels(model, version, protocol).observe(seconds)
        if rows:
            self.rows.labels(model, version).inc(rows)

    def update_memory(self) -> None:
        for kind, value in process_memory().items():
            self.memory.labels(kind).set(value)

    def render(self) -> bytes:
        self.update_memory()
        if self.multiprocess is None:
            assert self.registry is not None
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess))  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def process_memory() -> dict[str, int]:
    """This process's rss, pss and uss in bytes, from /proc (empty where /proc is absent)."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return {}
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0), "uss": private}
