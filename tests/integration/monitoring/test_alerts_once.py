"""With ``ferry server --workers 2`` every alert reaches the webhook once: the drift job runs
in the one worker holding the lease (one report and one post per round, not one per worker),
and a performance alert raised by both workers is posted by the first to claim it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.conftest import IRIS_COLUMNS
from tests.integration.conftest import platform_server
from tests.integration.monitoring.conftest import Receiver
from tests.unit.monitoring.test_drift import iris_population, shift

pytestmark = pytest.mark.integration

INTERVAL = 1.5  # seconds between drift rounds
ROUNDS = 3


def population(rows: int, seed: int) -> pd.DataFrame:
    return iris_population(rows, seed).set_axis(IRIS_COLUMNS, axis=1)


def wait_for(condition: object, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_workers_post_each_alert_once(
    tmp_path: Path, receiver: Receiver, iris_bundle: Path, iris_model: LogisticRegression
) -> None:
    home = tmp_path / "home"
    reference = tmp_path / "train.parquet"
    population(1000, 1).to_parquet(reference)
    shifted = shift(population(800, 3), ["sepal_length", "petal_width"])
    env = {
        "FERRY_ALERT_WEBHOOK_URL": receiver.url,
        "FERRY_DRIFT_INTERVAL_SECONDS": str(INTERVAL),
        "FERRY_PERFORMANCE_THRESHOLDS": json.dumps({"accuracy": 0.9}),
        "FERRY_PERFORMANCE_MIN_SAMPLES": "20",
    }
    log = tmp_path / "server.log"
    with platform_server(home, "--workers", "2", log=log, env=env) as url:
        registered = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", "register", str(iris_bundle), "-n", "iris",
             "--alias", "production", "--reference", str(reference)],
            env={**os.environ, "FERRY_URL": url, "FERRY_HOME": str(home)},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert registered.returncode == 0, registered.stdout + registered.stderr
        answers = []
        for start in range(0, len(shifted), 100):
            rows = shifted.iloc[start : start + 100]
            answer = httpx.post(
                f"{url}/v1/models/iris/versions/1/predict",
                json={"instances": rows.to_dict("records")},
                timeout=60,
            ).json()
            assert answer["predictions"] == iris_model.predict(rows).tolist()
            answers.append(answer)

        # every answer wrong (accuracy 0): each worker that takes feedback crosses the threshold
        def feedback(answer: dict[str, object]) -> int:
            predictions = answer["predictions"]
            assert isinstance(predictions, list)
            truth = [(p + 1) % 3 for p in predictions]
            item = {"request_id": answer["request_id"], "truth": truth}
            return httpx.post(f"{url}/v1/models/iris/feedback", json=item, timeout=60).status_code

        def raised() -> int:
            return log.read_text().count("performance alert: iris version 1: accuracy")

        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(4) as pool:  # new connections, so both workers take some
            while raised() < 2:
                assert time.monotonic() < deadline, "the second worker never raised the alert"
                assert set(pool.map(feedback, answers)) == {200}

        def drift_posts() -> list[dict[str, object]]:
            return [b for b in receiver.bodies if b["alert"] == "data_drift"]

        wait_for(lambda: len(drift_posts()) >= ROUNDS, f"{ROUNDS} drift rounds")
        history = httpx.get(f"{url}/api/v1/models/iris/drift", timeout=60).json()["items"]
    time.sleep(1.0)  # a post in flight at shutdown lands now

    # the performance alert: raised by both workers, posted once
    performance = [b for b in receiver.bodies if b["alert"] == "performance"]
    assert len(performance) == 1, performance
    assert (performance[0]["model"], performance[0]["metric"]) == ("iris", "accuracy")
    assert performance[0]["value"] == 0.0
    assert "alert already posted by another process" in log.read_text()

    # the drift job: one report per round, each posted once
    report_ids = [post["report_id"] for post in drift_posts()]
    assert len(report_ids) == len(set(report_ids))
    assert {item["id"] for item in history[1:]} <= set(report_ids)  # newest first
    times = sorted(datetime.fromisoformat(item["created_at"]) for item in history)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) >= ROUNDS - 1
    assert min(gaps) > 0.7 * INTERVAL, gaps  # two workers' rounds would come in pairs
    assert all(item["drifted"] for item in history)
