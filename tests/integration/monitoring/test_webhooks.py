"""Alert webhooks against a real HTTP receiver on a loopback port."""

from __future__ import annotations

import time

import pytest

from ferry.monitoring.drift import compute_drift
from ferry.monitoring.profile import profile_frame
from ferry.monitoring.webhooks import WebhookConfig, drift_alert, send_alert_sync
from tests.integration.conftest import free_port
from tests.integration.monitoring.conftest import Receiver
from tests.unit.monitoring.test_drift import SHIFTED, iris_population, shift

pytestmark = pytest.mark.integration


def drifted_payload() -> dict[str, object]:
    profile = profile_frame(iris_population(1000, seed=1), source="test")
    report = compute_drift(profile, shift(iris_population(500, seed=2), SHIFTED))
    report = report.model_copy(update={"model": "iris", "version": 3})
    return drift_alert(report, report_id=7)


def test_first_attempt_fails_then_delivered(receiver: Receiver) -> None:
    receiver.answers = [503, 200]
    payload = drifted_payload()
    config = WebhookConfig(receiver.url, attempts=4, backoff_seconds=0.05)
    delivery = send_alert_sync(config, payload)
    assert delivery.delivered
    assert delivery.attempts == 2
    assert delivery.status == 200
    assert len(receiver.bodies) == 2
    assert receiver.bodies[-1] == payload
    assert receiver.bodies[-1]["drifted_features"] == SHIFTED
    assert receiver.bodies[-1]["model"] == "iris"
    assert set(receiver.bodies[-1]["features"]) == set(SHIFTED)  # type: ignore[arg-type]
    assert receiver.keys[0] == receiver.keys[1]  # one delivery, one idempotency key


def test_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.answers = [400]
    delivery = send_alert_sync(WebhookConfig(receiver.url, backoff_seconds=0.05), {"alert": "x"})
    assert not delivery.delivered
    assert delivery.attempts == 1
    assert delivery.status == 400


def test_retries_are_bounded(receiver: Receiver) -> None:
    receiver.answers = [500]
    started = time.monotonic()
    config = WebhookConfig(receiver.url, attempts=3, backoff_seconds=0.05)
    delivery = send_alert_sync(config, {"alert": "x"})
    assert not delivery.delivered
    assert delivery.attempts == 3
    assert len(receiver.bodies) == 3
    assert time.monotonic() - started < 5


def test_unreachable_receiver_gives_up() -> None:
    config = WebhookConfig(
        f"http://127.0.0.1:{free_port()}/", attempts=2, backoff_seconds=0.01, timeout_seconds=1
    )
    delivery = send_alert_sync(config, {"alert": "x"})
    assert not delivery.delivered
    assert delivery.status is None
    assert "ConnectError" in delivery.error
