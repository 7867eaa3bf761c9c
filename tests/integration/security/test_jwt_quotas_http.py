"""Quotas for JWT callers on a real ``ferry server --auth``: FERRY_JWT_REQUESTS_PER_MINUTE limits
every subject, counted per subject (a subject's tokens share one count); a token's ``ferry_rpm``
claim lowers its limit, never raises it; a bad claim makes the token invalid."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration

SECRET = "hs256-shared-secret-for-the-quota-test-0123"
LIMIT = 3
ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def token(subject: str, **extra: Any) -> str:
    claims = {"sub": subject, "exp": int(time.time()) + 600, "scope": "predict:iris", **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def predict(url: str, bearer: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/iris/predict",
        json=ROWS,
        headers={"authorization": f"Bearer {bearer}"},
        timeout=30,
    )


def statuses(url: str, bearer: str, times: int) -> list[int]:
    return [predict(url, bearer).status_code for _ in range(times)]


def start_of_a_minute() -> None:
    """Every request below must land in one fixed one-minute window."""
    into = time.time() % 60
    if into > 45:
        time.sleep(61 - into)


def test_jwt_requests_per_minute(home: Home, start_server: StartServer) -> None:
    url = start_server(
        home,
        "--auth",
        "--workers",
        "1",
        FERRY_JWT_SECRET=SECRET,
        FERRY_JWT_REQUESTS_PER_MINUTE=str(LIMIT),
    )
    alice, alice_again = token("alice"), token("alice", jti="another-token")
    assert alice != alice_again
    start_of_a_minute()
    assert statuses(url, alice, LIMIT) == [200] * LIMIT
    refused = predict(url, alice)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert (error["code"], error["details"]["limit"]) == ("rate_limited", "requests_per_minute")
    assert "alice" in error["message"]
    # the quota is the subject's: another token of alice's is refused as well
    assert predict(url, alice_again).status_code == 429
    # another subject is unaffected
    assert statuses(url, token("bob"), LIMIT) == [200] * LIMIT
    # a claim lowers the limit for its token; a higher one does not raise it
    assert statuses(url, token("carol", ferry_rpm=1), 2) == [200, 429]
    assert statuses(url, token("dave", ferry_rpm=100), LIMIT + 1) == [200] * LIMIT + [429]
    bad = predict(url, token("eve", ferry_rpm=0))
    assert bad.status_code == 401, bad.text
    assert "ferry_rpm" in bad.json()["error"]["message"]


def test_jwt_callers_stay_unlimited_without_the_setting(
    home: Home, start_server: StartServer
) -> None:
    url = start_server(home, "--auth", "--workers", "1", FERRY_JWT_SECRET=SECRET)
    start_of_a_minute()
    assert statuses(url, token("alice"), LIMIT + 3) == [200] * (LIMIT + 3)
