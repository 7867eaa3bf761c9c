"""Routes for monitoring: a version's reference profile, drift runs, their history and report.

``POST .../drift`` compares live rows (sent in the body, or the version's last window of the
prediction log) with the reference profile, stores the report (so it shows in the history and
the ``ferry_drift_*`` gauges), and posts an alert to the webhook when a feature drifted: in
the background (server/alerting.py), so the answer says ``alert: "queued"``, not its outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ferry.durations import MAX_DURATION
from ferry.errors import ConfigError, FeatureNotConfigured, InvalidRequest, PayloadTooLarge
from ferry.monitoring.drift import DriftThresholds, compute_drift
from ferry.monitoring.jobs import Window, drift_of_window
from ferry.monitoring.profile import ReferenceProfile
from ferry.monitoring.references import reference_profile
from ferry.monitoring.runs import DriftHistory, DriftRun, DriftSummary
from ferry.monitoring.storage import MAX_ROW_ID, DriftRecord, MonitoringStore
from ferry.monitoring.webhooks import WebhookConfig, drift_alert
from ferry.registry.names import MAX_VERSION
from ferry.server.alerting import post_in_background
from ferry.server.control.routing import (
    ADMIN,
    PUBLISH_MODEL,
    READ_ALL,
    READ_MODEL,
    RegistryProvider,
    control_routes,
)
from ferry.server.routes import RouteTable

if TYPE_CHECKING:
    import pandas as pd

MAX_LIVE_ROWS = 1_000_000
_BINARY = {"type": "string", "format": "binary"}


# bounded as the columns are: a larger number overflowed the database driver (a 500)
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number.")]
ReportId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A drift report's id.")]


class SplitFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str]
    data: list[list[Any]]


class DriftIn(BaseModel):
    """Live rows: ``rows`` (records), ``dataframe_split``, or ``window_seconds`` of the
    prediction log (the last that many seconds)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] | None = None
    dataframe_split: SplitFrame | None = None
    # at most a century (durations.MAX_DURATION): 1e300 overflowed timedelta, a 500
    window_seconds: float | None = Field(default=None, gt=0, le=MAX_DURATION.total_seconds())
    store: bool = Field(default=True, description="Keep the report in the history.")
    alert: bool = Field(default=True, description="Post to the webhook when drift is found.")


class MonitoringRoutes:
    def __init__(
        self,
        registry: RegistryProvider,
        thresholds: DriftThresholds,
        webhook: WebhookConfig | None,
        store: MonitoringStore,
    ) -> None:
        self.registry = registry
        self.thresholds = thresholds
        self.webhook = webhook
        self.store = store

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["monitoring"])
        version = "/models/{name}/versions/{version}"
        routes.add(version + "/profile", self.get_profile, "GET", READ_MODEL)
        routes.add(version + "/drift", self.run_drift, "POST", PUBLISH_MODEL)
        routes.add("/models/{name}/drift", self.history, "GET", READ_MODEL)
        routes.add("/drift/{report_id}", self.get_report, "GET", READ_ALL)
        routes.add(
            "/drift/{report_id}/report.html",
            self.get_report_html,
            "GET",
            READ_ALL,
            response_model=None,
            responses={200: {"content": {"text/html": {}}, "description": "The HTML report"}},
        )
        return routes

    def _store(self) -> MonitoringStore:
        return self.store

    def get_profile(self, name: str, version: VersionNumber) -> ReferenceProfile:
        """The version's reference profile (per feature: quantiles, bins, categories)."""
        return reference_profile(self.registry(), self.store, name, version)

    def run_drift(self, name: str, version: VersionNumber, body: DriftIn) -> DriftRun:
        """Compare live rows with the version's reference profile; store and alert."""
        registry = self.registry()
        store = self.store
        registry.get_version(name, version)
        live = _live_rows(body)
        if live is None:
            assert body.window_seconds is not None
            window = Window.last(timedelta(seconds=body.window_seconds))
            report = drift_of_window(registry, store, name, version, window, self.thresholds)
        else:
            thresholds = self.thresholds.with_overrides(registry.get_model(name).tags)
            profile = reference_profile(registry, store, name, version)
            report = compute_drift(profile, live, thresholds).model_copy(
                update={"model": name, "version": version}
            )
        report_id = store.add_drift(report) if body.store else None
        if report.drifted and body.alert and self.webhook is not None:
            # in the background: a slow or failing receiver must not hold up the answer
            post_in_background(self.webhook, drift_alert(report, report_id=report_id))
            return DriftRun(id=report_id, report=report, alert="queued")
        return DriftRun(id=report_id, report=report)

    def history(
        self,
        name: str,
        version: Annotated[
            int | None, Query(ge=1, le=MAX_VERSION, description="Only this version.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> DriftHistory:
        """Stored drift reports of a model, newest first."""
        registry = self.registry()
        registry.get_model(name)
        records = self.store.drift_history(name, version, limit=limit)
        return DriftHistory(items=[_summary(r) for r in records])

    def get_report(self, report_id: ReportId) -> DriftRun:
        return DriftRun(id=report_id, report=self._store().get_drift(report_id).report)

    def get_report_html(self, report_id: ReportId) -> HTMLResponse:
        """The report as a self-contained HTML page with its plots."""
        from ferry.monitoring.report import render_html

        return HTMLResponse(render_html(self._store().get_drift(report_id).report))


def _summary(record: DriftRecord) -> DriftSummary:
    report = record.report
    return DriftSummary(
        id=record.id,
        model=record.model,
        version=record.version,
        created_at=report.created_at,
        live_rows=report.live_rows,
        drifted=report.drifted,
        drifted_features=report.drifted_features,
    )


def _live_rows(body: DriftIn) -> pd.DataFrame | None:
    """The rows sent in the body; None for a window of the prediction log."""
    import pandas as pd

    given = [
        name
        for name, value in (
            ("rows", body.rows),
            ("dataframe_split", body.dataframe_split),
            ("window_seconds", body.window_seconds),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidRequest(
            "give the live rows once: rows, dataframe_split or window_seconds"
            + (f" (got {', '.join(given)})" if given else ""),
            field=given[-1] if given else "body",
        )
    if body.window_seconds is not None:
        return None
    if body.rows is not None:
        frame = pd.DataFrame.from_records(body.rows)
    else:
        assert body.dataframe_split is not None
        split = body.dataframe_split
        if any(len(row) != len(split.columns) for row in split.data):
            raise InvalidRequest(
                f"dataframe_split: every row needs {len(split.columns)} values",
                field="dataframe_split.data",
            )
        frame = pd.DataFrame(split.data, columns=split.columns)
    if len(frame) > MAX_LIVE_ROWS:
        raise InvalidRequest(f"at most {MAX_LIVE_ROWS} live rows per run", field="rows")
    return frame


class TelemetryReceipt(BaseModel):
    site: str
    created: bool = Field(description="False when this bundle had been received before.")
    since: datetime
    until: datetime


class TelemetrySite(BaseModel):
    site: str
    created_at: datetime
    since: datetime
    until: datetime
    bundles: int
    summary: dict[str, Any]


class TelemetrySites(BaseModel):
    items: list[TelemetrySite]


class TelemetryRoutes:
    """``POST /api/v1/telemetry``: a site pushes a signed bundle (``ferry telemetry push``);
    ``GET /api/v1/telemetry/sites``: the sites heard from, with their latest summary."""

    def __init__(self, store: MonitoringStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["telemetry"])
        routes.add(
            "/telemetry",
            self.receive,
            "POST",
            ADMIN,
            response_model=TelemetryReceipt,
            openapi_extra={
                "requestBody": {
                    "required": True,
                    # the bundle's bytes; any binary media type is read the same way
                    "content": {
                        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                }
            },
        )
        routes.add("/telemetry/sites", self.sites, "GET", READ_ALL)
        return routes

    async def receive(self, request: Request) -> TelemetryReceipt:
        """Verify a pushed bundle with this server's FERRY_TELEMETRY_KEY and keep its summary."""
        import anyio.to_thread

        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise PayloadTooLarge(
                    f"a telemetry bundle is at most {self.max_bytes} bytes", limit=self.max_bytes
                )
        return await anyio.to_thread.run_sync(self._import, bytes(body))

    def _import(self, data: bytes) -> TelemetryReceipt:
        from ferry.monitoring.export import import_site
        from ferry.monitoring.telemetry import KEY_ENV, load_key, verify_bundle

        try:
            key = load_key()
        except ConfigError as exc:
            raise FeatureNotConfigured(
                f"this server takes no telemetry: {exc.message}", setting=KEY_ENV
            ) from exc
        record, created = import_site(verify_bundle(data, key), self._store())
        return TelemetryReceipt(
            site=record.site, created=created, since=record.since, until=record.until
        )

    def _store(self) -> MonitoringStore:
        return self.store

    def sites(self) -> TelemetrySites:
        return TelemetrySites(
            items=[
                TelemetrySite(
                    site=item.site,
                    created_at=item.created_at,
                    since=item.since,
                    until=item.until,
                    bundles=bundles,
                    summary=item.summary.get("summary", {}),
                )
                for item, bundles in self._store().latest_telemetry()
            ]
        )
