"""What a site's telemetry bundle holds, and loading one on our side.

Files: ``summary.json`` (the headline numbers), ``models.json`` (versions and aliases),
``drift.json`` (the drift reports of the window: statistics and binned shares, no rows),
``predictions.json`` (the prediction log's window: requests, errors, latency per version)
and, when the site's ``/metrics`` was read, ``metrics.json`` (see summaries.py).
``samples.jsonl`` (logged requests with their inputs and outputs) only when asked for.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.errors import TelemetryRejected
from ferry.monitoring.storage import MonitoringStore, TelemetryImport
from ferry.monitoring.summaries import summarize_log, summarize_metrics
from ferry.monitoring.telemetry import Bundle, canonical, write_bundle

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ferry.registry import Registry

PAGE = 1000
REQUIRED_FILES = ("summary.json", "models.json", "drift.json")
MAX_SITE = 128
MAX_DRIFT_REPORTS = 10_000


def site_files(
    registry: Registry,
    store: MonitoringStore,
    *,
    since: datetime,
    until: datetime,
    metrics_text: str | None = None,
    max_samples: int = 0,
) -> dict[str, bytes]:
    engine = store.engine
    models = _models(registry)
    records = [
        r
        for r in store.drift_history(since=since, limit=MAX_DRIFT_REPORTS)
        if r.report.created_at <= until
    ]
    drift = [
        {
            "id": r.id,
            "model": r.model,
            "version": r.version,
            "report": r.report.model_dump(mode="json"),
        }
        for r in records
    ]
    drifted = sorted({f"{r.model}/{r.version}" for r in records if r.report.drifted})
    summary: dict[str, Any] = {
        "models": len({m["model"] for m in models}),
        "versions": len(models),
        "drift_runs": len(drift),
        "drifted_runs": sum(1 for r in records if r.report.drifted),
        "drifted_versions": drifted,
    }
    logged = summarize_log(engine, since, until)
    files = {
        "models.json": canonical(models),
        "drift.json": canonical(drift),
        "predictions.json": canonical(logged),
    }
    counts = logged  # the window's own numbers; /metrics' cumulative ones only without a log
    if metrics_text is not None:
        metrics = summarize_metrics(metrics_text)
        files["metrics.json"] = canonical(metrics)
        if not logged["versions"]:
            counts = metrics
    versions = counts["versions"]
    summary["requests"] = sum(v["requests"] for v in versions)
    summary["server_errors"] = sum(v["server_errors"] for v in versions)
    summary["client_errors"] = sum(v["client_errors"] for v in versions)
    summary["errors_by_code"] = counts["errors_by_code"]
    summary["counts_from"] = "prediction log" if counts is logged else "/metrics"
    if max_samples > 0:
        lines = _samples(engine, since, until, max_samples)
        files["samples.jsonl"] = b"".join(lines)
        summary["samples"] = len(lines)
    files["summary.json"] = canonical(summary)
    return files


def _samples(engine: Engine, since: datetime, until: datetime, limit: int) -> list[bytes]:
    """The newest logged requests of the window, with inputs and outputs, one JSON a line."""
    from ferry.monitoring.predlog import PredictionStore, read_records

    records = read_records(PredictionStore(engine), since=since, until=until, limit=limit)
    return [canonical(record.to_json()) + b"\n" for record in records]


def _models(registry: Registry) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = registry.list_models(limit=PAGE, offset=offset)
        for model in page.items:
            by_version: dict[int, list[str]] = {}
            for alias, number in model.aliases.items():
                by_version.setdefault(number, []).append(alias)
            versions = registry.list_versions(model.name, limit=PAGE).items
            found.extend(
                {
                    "model": model.name,
                    "version": v.version,
                    "flavor": v.flavor,
                    "sha256": v.sha256,
                    "created_at": v.created_at.isoformat(),
                    "aliases": sorted(by_version.get(v.version, [])),
                }
                for v in versions
            )
        offset += PAGE
        if offset >= page.total:
            return found


def export_site(
    registry: Registry,
    store: MonitoringStore,
    out: Path,
    *,
    key: bytes,
    site: str,
    since: datetime,
    until: datetime,
    metrics_text: str | None = None,
    max_samples: int = 0,
) -> dict[str, Any]:
    files = site_files(
        registry,
        store,
        since=since,
        until=until,
        metrics_text=metrics_text,
        max_samples=max_samples,
    )
    return write_bundle(out, files, key=key, site=site, since=since, until=until)


def import_site(bundle: Bundle, store: MonitoringStore) -> tuple[TelemetryImport, bool]:
    """Keep a verified bundle's summary (not its samples) under its site's name."""
    manifest = bundle.manifest
    missing = sorted(set(REQUIRED_FILES) - set(bundle.files))
    if missing:
        raise TelemetryRejected(f"the bundle lacks {', '.join(missing)}", missing=missing)
    if len(bundle.site) > MAX_SITE:
        raise TelemetryRejected(f"the site name is longer than {MAX_SITE} characters")
    summary: dict[str, Any] = {
        "summary": bundle.json("summary.json"),
        "models": bundle.json("models.json"),
        "drift": bundle.json("drift.json"),
        "ferry_version": manifest.get("ferry_version"),
        "files": sorted(manifest["files"]),
    }
    for name in ("metrics", "predictions"):
        if f"{name}.json" in bundle.files:
            summary[name] = bundle.json(f"{name}.json")
    return store.add_telemetry(
        site=bundle.site,
        bundle_sha256=bundle.sha256,
        created_at=datetime.fromisoformat(manifest["created_at"]),
        since=datetime.fromisoformat(manifest["since"]),
        until=datetime.fromisoformat(manifest["until"]),
        summary=summary,
    )
