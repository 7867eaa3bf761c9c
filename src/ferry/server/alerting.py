"""``ferry server``'s drift job and alert webhooks.

The drift job checks every profiled version against its last window of logged predictions
every ``FERRY_DRIFT_INTERVAL_SECONDS`` (off at 0). Every worker runs the loop, but a round
runs only in the process that holds the ``lease:drift-job`` lease in the registry database
(db/leases.py): one process among the workers of this server and of any other
server on the same database (replicas over PostgreSQL), so each check, and its alert, happens
once. A holder that dies is replaced once its lease expires (``lease_seconds``).

Alerts are posted from a thread (``post_in_background``) so that the request or the job that
raised one never waits for the receiver and its retries. A performance alert is posted once
per ``FERRY_ALERT_COOLDOWN_SECONDS`` for its model, version and metric: each worker keeps its
own view of a threshold crossing, so the first to claim the alert in the database posts it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from ferry.config.settings import Settings
from ferry.db.leases import claim_once, hold_lease, new_holder, release_lease
from ferry.monitoring.drift import DriftThresholds, thresholds_from_settings
from ferry.monitoring.jobs import Window, run_drift_checks
from ferry.monitoring.storage import MonitoringStore
from ferry.monitoring.webhooks import WebhookConfig, send_alert_sync

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ferry.monitoring.performance import PerformanceAlert
    from ferry.registry import Registry

log = logging.getLogger(__name__)

DRIFT_LEASE = "lease:drift-job"


def webhook_config(settings: Settings) -> WebhookConfig | None:
    return WebhookConfig(settings.alert_webhook_url) if settings.alert_webhook_url else None


def post_in_background(
    config: WebhookConfig, payload: dict[str, Any], claim: Callable[[], bool] | None = None
) -> threading.Thread:
    """POST ``payload`` from a thread (with the webhook's retries), if ``claim()`` says this
    process is the one to send it; returns the thread."""

    def send() -> None:
        try:
            if claim is not None and not claim():
                log.info("alert already posted by another process", extra={"alert": payload})
                return
            send_alert_sync(config, payload)
        except Exception:  # a thread's boundary: the database or the event loop failed
            log.exception("alert not posted", extra={"alert": payload.get("alert")})

    thread = threading.Thread(target=send, name="ferry-webhook", daemon=True)
    thread.start()
    return thread


def performance_webhook(
    config: WebhookConfig, engine: Callable[[], Engine] | None = None, cooldown: float = 0.0
) -> Callable[[PerformanceAlert], None]:
    """An alert hook that posts the alert's JSON (``alert: performance``) in the background,
    once per ``cooldown`` seconds among every process on ``engine()``'s database."""

    def hook(alert: PerformanceAlert) -> None:
        payload = {"alert": "performance", "severity": "warning", **alert.to_json()}
        name = f"cooldown:performance:{alert.model}:{alert.version}:{alert.metric}"
        claim = None
        if engine is not None and cooldown > 0:
            claim = lambda: claim_once(engine(), name, cooldown)  # noqa: E731
        post_in_background(config, payload, claim)

    return hook


def lease_seconds(interval: float) -> float:
    """How long the drift job's lease lasts: two rounds, and a minute for a slow round."""
    return 2 * interval + 60.0


def drift_job(
    settings: Settings,
    registry: Callable[[], Registry],
    store: MonitoringStore | None = None,
) -> Callable[[], AbstractAsyncContextManager[None]] | None:
    """The drift checks as a part of the app, run while it runs (None when the interval is
    0); create_app() starts it after the model source. ``store`` defaults to monitoring's
    own database from ``settings``."""
    interval = settings.drift_interval_seconds
    if interval <= 0:
        return None
    monitoring = store or MonitoringStore.from_settings(settings)
    thresholds = thresholds_from_settings(settings)
    window = timedelta(seconds=settings.drift_window_seconds)
    webhook = webhook_config(settings)

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        holder = new_holder()  # this process (made after the fork)
        task = asyncio.create_task(
            _drift_loop(registry, monitoring, holder, interval, window, thresholds, webhook)
        )
        try:
            yield
        finally:
            task.cancel()
            try:  # hand the job over now rather than when the lease expires
                await anyio.to_thread.run_sync(
                    release_lease, monitoring.engine, DRIFT_LEASE, holder
                )
            except Exception:  # shutting down: the lease expires by itself
                log.exception("drift job lease not released")

    return running


def drift_round(
    registry: Registry,
    store: MonitoringStore,
    holder: int,
    lease: float,
    window: timedelta,
    thresholds: DriftThresholds,
    webhook: WebhookConfig | None,
) -> list[int] | None:
    """One round of the drift job, if ``holder`` holds (or takes) the lease: the stored
    reports' ids; None when another process runs the job."""
    if not hold_lease(store.engine, DRIFT_LEASE, holder, lease):
        return None
    return run_drift_checks(registry, store, Window.last(window), thresholds, webhook)


async def _drift_loop(
    registry: Callable[[], Registry],
    store: MonitoringStore,
    holder: int,
    interval: float,
    window: timedelta,
    thresholds: DriftThresholds,
    webhook: WebhookConfig | None,
) -> None:
    lease = lease_seconds(interval)
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(
                drift_round, registry(), store, holder, lease, window, thresholds, webhook
            )
        except Exception:  # the loop outlives one failed round (a database restart)
            log.exception("drift checks failed")
