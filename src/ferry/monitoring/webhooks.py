"""Alerts posted as JSON to a configured URL (``FERRY_ALERT_WEBHOOK_URL``), with retries.

A delivery is retried on connection errors, timeouts, 408, 429 and 5xx answers, waiting
``backoff * 2**attempt`` seconds (capped) in between, at most ``attempts`` times; any other
answer is final. Each POST carries an ``Idempotency-Key`` so a receiver can drop a repeat of
a delivery whose answer was lost. Nothing here raises on a failed delivery: alerts must not
break the job that raised them; the result says what happened and a warning is logged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from ferry import __version__
from ferry.monitoring.drift import DriftReport

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    attempts: int = 5
    timeout_seconds: float = 5.0
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status, None when no answer came
    error: str = ""


def drift_alert(report: DriftReport, *, report_id: int | None = None) -> dict[str, Any]:
    """The JSON body of a data drift alert."""
    return {
        "alert": "data_drift",
        "severity": "warning",
        "model": report.model,
        "version": report.version,
        "created_at": report.created_at.isoformat(),
        "window_start": report.window_start.isoformat() if report.window_start else None,
        "window_end": report.window_end.isoformat() if report.window_end else None,
        "live_rows": report.live_rows,
        "drifted_features": report.drifted_features,
        "features": {
            f.name: {name: t.statistic for name, t in f.tests.items() if t.drifted}
            for f in report.features
            if f.drifted
        },
        "report_id": report_id,
    }


def _retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


async def send_alert(
    config: WebhookConfig, payload: dict[str, Any], *, client: httpx.AsyncClient | None = None
) -> Delivery:
    """POST ``payload`` to the webhook, retrying as the module says."""
    key = str(uuid.uuid4())
    headers = {"Idempotency-Key": key, "User-Agent": f"ferry/{__version__}"}
    own = client is None
    http = client or httpx.AsyncClient(timeout=config.timeout_seconds)
    status: int | None = None
    error = ""
    try:
        for attempt in range(1, config.attempts + 1):
            try:
                response = await http.post(config.url, json=payload, headers=headers)
                status, error = response.status_code, ""
                if response.is_success:
                    return Delivery(True, attempt, status)
                if not _retryable(status):
                    break
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt < config.attempts:
                delay = min(config.backoff_seconds * 2 ** (attempt - 1), config.max_backoff_seconds)
                await asyncio.sleep(delay)
    finally:
        if own:
            await http.aclose()
    log.warning(
        "alert webhook not delivered",
        extra={"alert": payload.get("alert"), "status": status, "error": error},
    )
    return Delivery(False, attempt, status, error)


def send_alert_sync(config: WebhookConfig, payload: dict[str, Any]) -> Delivery:
    """``send_alert`` from synchronous code (the CLI, a worker thread)."""
    return asyncio.run(send_alert(config, payload))
