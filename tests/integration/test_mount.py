"""Ferry's app mounted inside another ASGI app: Starlette never runs a mounted app's lifespan,
so the app must start itself on its first request (README "Embedding Ferry")."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from ferry.config.settings import Settings
from ferry.model import load
from ferry.server.app import create_app
from tests.integration.inprocess import running


def test_mounted_app_becomes_ready_and_predicts(iris_bundle: Path, tmp_path: Path) -> None:
    host = FastAPI()

    @host.get("/own")
    async def own() -> dict[str, str]:
        return {"service": "host"}

    host.mount("/ml", create_app(Settings(home=tmp_path), [load(iris_bundle)]))
    with running(host) as base_url:
        assert httpx.get(f"{base_url}/own").json() == {"service": "host"}
        ready = httpx.get(f"{base_url}/ml/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["ready"] is True
        rows = [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
        answer = httpx.post(f"{base_url}/ml/v1/models/iris/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [0]
        v2 = {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [rows[0][c]]} for c in rows[0]
            ]
        }
        infer = httpx.post(f"{base_url}/ml/v2/models/iris/infer", json=v2)
        assert infer.status_code == 200, infer.text
        unknown = httpx.post(f"{base_url}/ml/v1/models/nope/predict", json={"instances": rows})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "model_not_found"
        # the route table sees the route path under the mount: V2's error shape, the docs
        lost = httpx.post(f"{base_url}/ml/v2/models/nope/infer", json=v2)
        assert lost.status_code == 404
        assert isinstance(lost.json()["error"], str)
        document = httpx.get(f"{base_url}/ml/openapi.json").json()
        assert document["servers"] == [{"url": "/ml"}]
        assert httpx.get(f"{base_url}/ml/docs").status_code == 200
