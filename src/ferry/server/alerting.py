"""``ferry server``'s drift job and alert webhooks.

The drift job checks every profiled version against its last window of logged predictions
every ``FERRY_DRIFT_INTERVAL_SECONDS`` (off at 0). With several workers only worker 0 runs
it (``FERRY_WORKER_INDEX``, set by the supervisor), so each check happens once. Performance
alerts (monitoring/performance.py) go to the same webhook as drift alerts, posted from a
thread so that the request that raised one does not wait for the receiver.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI

from ferry.config.settings import Settings
from ferry.monitoring.drift import DriftThresholds, thresholds_from_settings
from ferry.monitoring.jobs import Window, run_drift_checks
from ferry.monitoring.webhooks import WebhookConfig, send_alert_sync

if TYPE_CHECKING:
    from ferry.monitoring.performance import PerformanceAlert
    from ferry.registry import Registry

log = logging.getLogger(__name__)

WORKER_INDEX_ENV = "FERRY_WORKER_INDEX"


def webhook_config(settings: Settings) -> WebhookConfig | None:
    return WebhookConfig(settings.alert_webhook_url) if settings.alert_webhook_url else None


def performance_webhook(config: WebhookConfig) -> Callable[[PerformanceAlert], None]:
    """An alert hook that posts the alert's JSON (``alert: performance``) in the background."""

    def hook(alert: PerformanceAlert) -> None:
        payload = {"alert": "performance", "severity": "warning", **alert.to_json()}
        threading.Thread(
            target=send_alert_sync, args=(config, payload), name="ferry-webhook", daemon=True
        ).start()

    return hook


def attach_drift_job(app: FastAPI, settings: Settings, registry: Callable[[], Registry]) -> None:
    """Run the drift checks while the app runs (nothing when the interval is 0)."""
    interval = settings.drift_interval_seconds
    if interval <= 0:
        return
    thresholds = thresholds_from_settings(settings)
    window = timedelta(seconds=settings.drift_window_seconds)
    webhook = webhook_config(settings)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            task = None
            if os.environ.get(WORKER_INDEX_ENV, "0") == "0":
                task = asyncio.create_task(
                    _drift_loop(registry, interval, window, thresholds, webhook)
                )
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()

    app.router.lifespan_context = lifespan


async def _drift_loop(
    registry: Callable[[], Registry],
    interval: float,
    window: timedelta,
    thresholds: DriftThresholds,
    webhook: WebhookConfig | None,
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(
                run_drift_checks, registry(), Window.last(window), thresholds, webhook
            )
        except Exception:  # the loop outlives one failed round (a database restart)
            log.exception("drift checks failed")
