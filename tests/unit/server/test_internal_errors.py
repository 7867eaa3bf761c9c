"""Every 500 is counted in /metrics: the ones raised on purpose (prediction_failed) and the
bugs (internal), on the fast path and through FastAPI's handler alike."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pandas as pd

import ferry.model
from ferry.model import load
from ferry.server.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x nudges TestClient users towards httpx2; httpx is what Ferry's client uses
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

ODD = textwrap.dedent(
    """
    import numpy as np

    class Odd:
        def predict(self, frame):
            out = np.empty(len(frame), dtype=object)
            for i, x in enumerate(frame["x"]):
                out[i] = {1, 2} if x < 0 else "ok"  # a set: no JSON for it, a bug
            return out
    """
)


def internal_errors(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('ferry_errors_total{code="internal"}'):
            return float(line.split()[-1])
    return 0.0


def test_internal_errors_are_counted(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(ODD)
    bundle = tmp_path / "bundle"
    ferry.model.save(f"{tmp_path / 'odd.py'}:Odd", bundle, example=pd.DataFrame({"x": [1.0]}))

    async def broken() -> None:
        raise RuntimeError("a bug in a route")

    app = create_app(None, [load(bundle, trust=True)])  # our own test class
    app.add_api_route("/broken", broken, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as client:
        assert internal_errors(client.get("/metrics").text) == 0.0
        fast = client.post("/v1/models/odd/predict", json={"instances": [{"x": -1.0}]})
        assert fast.status_code == 500
        assert fast.json()["error"]["code"] == "internal"
        assert "set" not in fast.text  # no internals in a 5xx body
        assert internal_errors(client.get("/metrics").text) == 1.0
        routed = client.get("/broken")
        assert routed.status_code == 500
        assert "a bug" not in routed.text
        assert internal_errors(client.get("/metrics").text) == 2.0
        good = client.post("/v1/models/odd/predict", json={"instances": [{"x": 1.0}]})
        assert good.json()["predictions"] == ["ok"]
