"""Prometheus collectors for serving; one CollectorRegistry per app, passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "ferry_requests",
            "Prediction requests by model, version, protocol and HTTP status.",
            ["model", "version", "protocol", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ferry_request_duration_seconds",
            "Time to answer a prediction request, parsing to serialization.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "ferry_predicted_rows",
            "Rows predicted, by model and version.",
            ["model", "version"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ferry_errors",
            "Errors answered, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "ferry_batch_requests",
            "Requests merged into one predict call by adaptive batching.",
            ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.loaded = Gauge(
            "ferry_loaded_models", "Models loaded in this process.", registry=self.registry
        )

    def observe(
        self, model: str, version: str, protocol: str, status: int, seconds: float, rows: int
    ) -> None:
        self.requests.labels(model, version, protocol, str(status)).inc()
        self.duration.labels(model, version, protocol).observe(seconds)
        if rows:
            self.rows.labels(model, version).inc(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)
