"""``ferry serve PATH --auth``: one model behind keys from the local store; ``/invocations``
needs ``predict`` on that model."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import start_server, stop_server
from tests.integration.security.conftest import Home

pytestmark = pytest.mark.integration

BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def test_serve_with_auth(home: Home, iris_bundle: Path, tmp_path: Path) -> None:
    process, url = start_server(iris_bundle, "--auth", log=tmp_path / "serve.log", env=home.env)
    try:
        iris = {"x-api-key": home.key("ci", "predict:iris")}
        other = {"x-api-key": home.key("wine", "predict:wine")}
        for path in ("/v1/models/iris/predict", "/invocations"):
            assert httpx.post(url + path, json=BODY).status_code == 401, path
            assert httpx.post(url + path, json=BODY, headers=other).status_code == 403, path
            assert httpx.post(url + path, json=BODY, headers=iris).status_code == 200, path
        assert httpx.get(f"{url}/readyz").status_code == 200
    finally:
        stop_server(process)
