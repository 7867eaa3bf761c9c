"""Drift over the prediction log: one version's live window, and the periodic check of every
profiled version that ``ferry server`` runs (``FERRY_DRIFT_INTERVAL_SECONDS``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ferry.errors import ProfileNotFound
from ferry.monitoring.drift import DriftReport, DriftThresholds, compute_drift
from ferry.monitoring.storage import MonitoringStore
from ferry.monitoring.webhooks import WebhookConfig, drift_alert, send_alert_sync

if TYPE_CHECKING:
    import pandas as pd

    from ferry.monitoring.predlog import PredictionStore
    from ferry.monitoring.profile import ReferenceProfile
    from ferry.registry import Registry

log = logging.getLogger(__name__)

MAX_WINDOW_ROWS = 200_000  # the newest window this large is plenty for PSI and KS


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, length: timedelta, now: datetime | None = None) -> Window:
        end = now or datetime.now(UTC)
        return cls(end - length, end)


def predictions_of(store: MonitoringStore) -> PredictionStore:
    """The prediction log in monitoring's own database (its engine: no new connection pool)."""
    from ferry.monitoring.predlog import PredictionStore

    return PredictionStore(store.engine)


def live_window(
    predictions: PredictionStore,
    model: str,
    version: int,
    profile: ReferenceProfile,
    window: Window,
) -> pd.DataFrame:
    """The inputs the version answered in the window, one column per profiled feature."""
    from ferry.monitoring.predlog import read_inputs

    columns = [feature.name for feature in profile.features]
    return read_inputs(
        predictions,
        model,
        version,
        window.start,
        window.end,
        columns=columns,
        max_rows=MAX_WINDOW_ROWS,
    )


def drift_of_window(
    registry: Registry,
    store: MonitoringStore,
    model: str,
    version: int,
    window: Window,
    thresholds: DriftThresholds,
) -> DriftReport:
    from ferry.monitoring.references import reference_profile

    profile = reference_profile(registry, store, model, version)
    tuned = thresholds.with_overrides(registry.get_model(model).tags)
    live = live_window(predictions_of(store), model, version, profile, window)
    return compute_drift(profile, live, tuned).model_copy(
        update={
            "model": model,
            "version": version,
            "window_start": window.start,
            "window_end": window.end,
        }
    )


def aliased_versions(registry: Registry) -> set[tuple[str, int]]:
    """The versions some alias (production, staging ...) points at."""
    found: set[tuple[str, int]] = set()
    offset = 0
    while True:
        page = registry.list_models(limit=1000, offset=offset)
        found |= {(m.name, number) for m in page.items for number in m.aliases.values()}
        offset += 1000
        if offset >= page.total:
            return found


def run_drift_checks(
    registry: Registry,
    store: MonitoringStore,
    window: Window,
    thresholds: DriftThresholds,
    webhook: WebhookConfig | None = None,
) -> list[int]:
    """Check every profiled or aliased version that had enough traffic in the window: store
    each report and alert the webhook on drift. Returns the stored reports' ids."""
    stored: list[int] = []
    for model, version in sorted(set(store.profiled_versions()) | aliased_versions(registry)):
        try:
            report = drift_of_window(registry, store, model, version, window, thresholds)
        except ProfileNotFound:
            continue  # no example and no reference: nothing to compare with
        except Exception:  # one bad version (its tags, its rows) must not stop the others
            log.exception("drift check failed", extra={"model": model, "version": version})
            continue
        if not report.features:  # too little traffic to test: nothing worth keeping
            continue
        report_id = store.add_drift(report)
        stored.append(report_id)
        log.info(
            "drift checked",
            extra={"model": model, "version": version, "drifted": report.drifted_features},
        )
        if report.drifted and webhook is not None:
            send_alert_sync(webhook, drift_alert(report, report_id=report_id))
    return stored
