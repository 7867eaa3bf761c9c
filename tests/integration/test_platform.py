"""``ferry server`` over a registry: models load on first request in each worker, a bare name
follows the production alias, and moving the alias switches traffic with no failed request."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import ferry.model
from ferry.client import Client
from tests.integration.conftest import platform_server

pytestmark = pytest.mark.integration

# the switch takes about refresh interval + one model load; CI machines are busy, so the test
# allows a generous bound and reports the time it saw
SWITCH_SECONDS = 10.0


@pytest.fixture
def stump_bundle(tmp_path: Path, iris_data: tuple[pd.DataFrame, pd.Series]) -> Path:
    """Version 2 of iris: a one-split tree, so its answers differ from version 1's."""
    X, y = iris_data
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    ferry.model.save(stump, tmp_path / "stump", example=X.head(5), name="iris")
    return tmp_path / "stump"


class Hammer(threading.Thread):
    """Sends the same rows continuously; records (time, status, version, predictions)."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.answers: list[tuple[float, int, str, list[Any]]] = []
        self.stop = threading.Event()

    def settled(self, since: float) -> bool:
        """Only answers from version 2 in the last half second, which began after ``since``."""
        now = time.monotonic()
        if now - since < 0.5:
            return False
        recent = [a for a in self.answers[-500:] if a[0] > now - 0.5]
        return bool(recent) and all(version == "2" for _, _, version, _ in recent)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                response = client.post(self.url, json=self.body)
                answer = response.json()
                self.answers.append(
                    (
                        time.monotonic(),
                        response.status_code,
                        answer.get("version", ""),
                        answer.get("predictions", []),
                    )
                )


def test_alias_move_switches_traffic_without_failures(
    tmp_path: Path,
    iris_bundle: Path,
    stump_bundle: Path,
    iris_data: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
) -> None:
    X, y = iris_data
    rows = X.iloc[[0, 60, 70, 120, 149]]
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    want = {"1": iris_model.predict(rows).tolist(), "2": stump.predict(rows).tolist()}
    assert want["1"] != want["2"]
    home = tmp_path / "home"
    with (
        platform_server(home, "--workers", "2", log=tmp_path / "server.log") as url,
        Client(url) as client,
    ):
        # everything over HTTP: two uploads, then the alias
        assert client.register(iris_bundle, "iris").version == 1
        assert client.register(stump_bundle, "iris", alias="production").version == 2
        client.set_alias("iris", "production", 1)
        body = {"instances": rows.to_dict("records")}
        first = httpx.post(f"{url}/v1/models/iris/predict", json=body, timeout=60)
        assert first.json()["version"] == "1"
        hammers = [Hammer(f"{url}/v1/models/iris/predict", body) for _ in range(3)]
        for hammer in hammers:
            hammer.start()
        time.sleep(1.0)
        client.set_alias("iris", "production", 2)
        moved_at = time.monotonic()
        deadline = moved_at + SWITCH_SECONDS + 5.0
        while time.monotonic() < deadline and not all(h.settled(moved_at) for h in hammers):
            time.sleep(0.2)
        time.sleep(0.5)
        for hammer in hammers:
            hammer.stop.set()
            hammer.join(timeout=10)
        pinned = httpx.post(
            f"{url}/v1/models/iris/versions/1/predict", json=body, timeout=60
        ).json()
        assert pinned["predictions"] == want["1"]
    answers = [a for hammer in hammers for a in hammer.answers]
    assert len(answers) > 50
    assert all(status == 200 for _, status, _, _ in answers)
    for _, _, version, predictions in answers:
        assert predictions == want[version]
    last_old = max((at for at, _, version, _ in answers if version == "1"), default=moved_at)
    assert last_old - moved_at < SWITCH_SECONDS
    after = [version for at, _, version, _ in answers if at > last_old]
    assert after
    assert set(after) == {"2"}


def test_optimize_a_registered_version(tmp_path: Path, iris_bundle: Path) -> None:
    """``ferry optimize iris@1`` registers an ONNX copy as version 2, with version 1 as parent;
    a server that prefers optimized copies routes ``iris@production`` (-> 1) to it."""
    from typer.testing import CliRunner

    from ferry.cli.main import app

    home = tmp_path / "home"
    rows = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    with (
        platform_server(home, "--workers", "1", log=tmp_path / "s.log") as url,
        Client(url) as client,
    ):
        client.register(iris_bundle, "iris")
        client.set_alias("iris", "production", 1)
        result = CliRunner().invoke(app, ["optimize", "iris@1", "--url", url])
        assert result.exit_code == 0, result.output
        copy = client.version("iris", 2)
        assert copy.flavor == "onnx"
        assert copy.tags == {"optimized": "onnx"}
        assert copy.parent is not None
        assert (copy.parent.model, copy.parent.version) == ("iris", 1)
        answers = [
            httpx.post(f"{url}/v1/models/iris/versions/{v}/predict", json=rows, timeout=60).json()
            for v in (1, 2)
        ]
        assert answers[0]["predictions"] == answers[1]["predictions"]
        # by default the alias is served as it points
        assert (
            httpx.post(f"{url}/v1/models/iris/predict", json=rows, timeout=60).json()["version"]
            == "1"
        )

    prefer = {"FERRY_PREFER_OPTIMIZED": "true"}
    with platform_server(home, "--workers", "1", log=tmp_path / "p.log", env=prefer) as url:
        for path in ("iris", "iris@production"):
            answer = httpx.post(f"{url}/v1/models/{path}/predict", json=rows, timeout=60).json()
            assert answer["version"] == "2", path
            assert answer["predictions"] == answers[0]["predictions"]
        pinned = httpx.post(
            f"{url}/v1/models/iris/versions/1/predict", json=rows, timeout=60
        ).json()
        assert pinned["version"] == "1"
