"""A server without FERRY_TELEMETRY_KEY takes no telemetry: a push is a 409
``feature_not_configured`` naming the setting, not a 503 a client would retry forever."""

from __future__ import annotations

import pytest

from tests.integration.control.conftest import StartControl
from tests.integration.monitoring.conftest import post

pytestmark = pytest.mark.integration


def test_push_to_a_server_without_a_key_names_the_setting(start_control: StartControl) -> None:
    control_server = start_control(FERRY_TELEMETRY_KEY="")  # set empty: not taken from ours
    answer = post(
        f"{control_server.url}/api/v1/telemetry",
        content=b"any bundle",
        headers={"Content-Type": "application/gzip"},
    )
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "feature_not_configured"
    assert error["details"]["setting"] == "FERRY_TELEMETRY_KEY"
    assert "FERRY_TELEMETRY_KEY" in error["message"]
