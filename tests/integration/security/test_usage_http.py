"""Usage metering is exact: after a scripted load on ``ferry server --workers 2`` over three
protocols, with some refused and some failing requests, the stored totals per key equal the
requests and rows sent, both from GET /api/v1/usage while running and from ``ferry usage``
once the server has stopped."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration

ROW = [5.1, 3.5, 1.4, 0.2]


@dataclass(frozen=True)
class Call:
    key: str  # key name
    protocol: str
    rows: int
    valid: bool = True

    def send(self, url: str, token: str) -> int:
        rows = [[*ROW[:3], 0.1 * i] for i in range(self.rows)]
        if not self.valid:
            rows = [row[:3] for row in rows]  # a column short: 4xx, counted as an error
        if self.protocol == "native":
            path, body = "/v1/models/iris/predict", {"instances": rows}
        elif self.protocol == "mlflow":
            path, body = "/mlflow/iris/invocations", {"instances": rows}
        else:
            width = len(rows[0])
            tensor = {"name": "x", "shape": [len(rows), width], "datatype": "FP64"}
            path, body = "/v2/models/iris/infer", {"inputs": [{**tensor, "data": rows}]}
        answer = httpx.post(url + path, json=body, headers={"x-api-key": token}, timeout=60)
        return answer.status_code


def plan() -> list[Call]:
    calls = []
    for i in range(90):
        key = "alpha" if i % 3 else "beta"
        calls.append(Call(key, ("native", "v2", "mlflow")[i % 3], rows=1 + (i * 7) % 11))
    calls += [Call("alpha", "native", rows=2, valid=False) for _ in range(4)]
    calls += [Call("beta", "v2", rows=3, valid=False) for _ in range(3)]
    return calls


def totals(items: list[dict[str, object]]) -> dict[str, tuple[int, int, int]]:
    found: dict[str, Counter[str]] = {}
    for item in items:
        counts = found.setdefault(str(item["key_name"]), Counter())
        for field in ("requests", "rows", "errors"):
            counts[field] += int(item[field])  # type: ignore[call-overload]
    return {k: (c["requests"], c["rows"], c["errors"]) for k, c in found.items()}


def test_usage_totals_are_exact(home: Home, start_server: StartServer) -> None:
    tokens = {"alpha": home.key("alpha", "predict:iris"), "beta": home.key("beta", "predict")}
    admin = home.key("admin", "admin")
    url = start_server(home, "--auth", "--workers", "2", FERRY_USAGE_FLUSH_SECONDS="0.5")
    calls = plan()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda c: c.send(url, tokens[c.key]), calls))
    assert [s == 200 for s in statuses] == [c.valid for c in calls], statuses
    # refused before reaching a model: not a prediction, not metered
    assert httpx.post(f"{url}/v1/models/iris/predict", json={"instances": [ROW]}).status_code == 401
    expected = {
        name: (
            sum(c.key == name for c in calls),
            sum(c.rows for c in calls if c.key == name and c.valid),
            sum(c.key == name and not c.valid for c in calls),
        )
        for name in tokens
    }
    deadline = time.monotonic() + 15  # each worker flushes every 0.5 s
    live: dict[str, tuple[int, int, int]] = {}
    while time.monotonic() < deadline and live != expected:
        answer = httpx.get(f"{url}/api/v1/usage", headers={"x-api-key": admin})
        assert answer.status_code == 200
        live = totals(answer.json()["items"])
        time.sleep(0.3)
    assert live == expected
    assert start_server.stop(url) == 0  # SIGTERM: workers flush on their way out
    today = datetime.now(UTC).date().isoformat()
    result = home.ferry("usage", "--since", today, "--format", "json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert totals(items) == expected
    assert {(i["model"], i["version"], i["day"]) for i in items} == {("iris", "1", today)}
    alpha = home.ferry("usage", "--since", today, "--key", "alpha", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(alpha.stdout)))
    assert {r["key_name"] for r in rows} == {"alpha"}
    assert sum(int(r["rows"]) for r in rows) == expected["alpha"][1]
    assert sum(float(r["compute_ms"]) for r in rows) > 0
    later = home.ferry("usage", "--since", "2999-01-01", "--format", "json")
    assert json.loads(later.stdout) == []
    bad = home.ferry("usage", "--since", "yesterday")
    assert bad.returncode == 1
    assert "since" in bad.stderr
