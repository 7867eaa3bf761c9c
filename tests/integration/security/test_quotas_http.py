"""Rate limits hold across worker processes: ``ferry server --workers 2`` shares one counter per
key (in the database, or in Redis with FERRY_REDIS_URL), so a key limited to N requests a minute
gets exactly N answers and 429s with Retry-After, whichever worker takes each connection."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.security.conftest import Home, StartServer
from tests.registry_fixtures import unavailable

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("FERRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LIMIT = 12
SENT = 40
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def redis_env() -> dict[str, str]:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is not reachable: {exc}")
    return {"FERRY_REDIS_URL": REDIS_URL}


def within_one_minute_window() -> None:
    """Start early in a minute so every request lands in one window."""
    into = time.time() % 60
    if into > 40:
        time.sleep(61 - into)


def predict(url: str, key: str) -> httpx.Response:
    # a new connection per request: the kernel hands each to either worker
    return httpx.post(
        f"{url}/v1/models/iris/predict",
        json={"instances": ROWS},
        headers={"x-api-key": key},
        timeout=60,
    )


@pytest.mark.parametrize("counters", ["database", "redis"])
def test_requests_per_minute_across_two_workers(
    home: Home, start_server: StartServer, counters: str
) -> None:
    env = redis_env() if counters == "redis" else {}
    url = start_server(home, "--auth", "--workers", "2", **env)
    key = home.key("metered", "predict:iris", requests_per_minute=LIMIT)
    unlimited = home.key("free", "predict:iris")
    # warm both workers' model caches so the burst below is quick
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: predict(url, unlimited), range(16)))
    within_one_minute_window()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: predict(url, key), range(SENT)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == SENT - LIMIT, statuses
    refused = [a for a in answers if a.status_code == 429]
    for answer in refused:
        retry = int(answer.headers["retry-after"])
        assert 1 <= retry <= 60
        assert answer.json()["error"]["code"] == "rate_limited"
    assert predict(url, unlimited).status_code == 200  # other keys are not affected


def test_rows_per_day(home: Home, start_server: StartServer) -> None:
    url = start_server(home, "--auth", "--workers", "2")
    key = home.key("rows", "predict:iris", rows_per_day=10)
    served = 0
    for _ in range(6):
        answer = predict(url, key)
        if answer.status_code == 429:
            assert answer.json()["error"]["details"]["limit"] == "rows_per_day"
            wait = int(answer.headers["retry-after"])  # until midnight UTC
            assert abs(wait - (86400 - time.time() % 86400)) < 5
            break
        assert answer.status_code == 200
        served += 1
        time.sleep(1.0)  # rows are charged after the answer, by each worker's flusher
    # 3 rows a request: 0, 3, 6, 9 rows used before the 1st..4th request, 12 before the 5th
    assert served == 4
