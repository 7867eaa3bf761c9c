"""The OpenAPI documents of real ``ferry serve`` (one model) and ``ferry server`` (two registered
models) processes: valid OpenAPI 3.1; schemathesis over each finds no schema error and no 5xx;
headless chromium with the network off shows the operations on ``/docs``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ferry.client import Client
from ferry.config.settings import Settings
from ferry.registry import Registry
from ferry.security.keys import KeyStore
from tests.integration.conftest import platform_server, served
from tests.integration.fuzzing import Findings, fuzz, operations
from tests.integration.inprocess import running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path) -> Iterator[str]:
    """``ferry serve`` of one model."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with served(iris_bundle, "--workers", "1", log=log) as url:
        yield url


@pytest.fixture(scope="module")
def server_url(
    tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path, mixed_bundle: Path
) -> Iterator[str]:
    """``ferry server`` over a registry holding two models of different signatures."""
    home = tmp_path_factory.mktemp("server")
    with platform_server(home, "--workers", "1", log=home / "server.log") as url:
        with Client(url) as client:
            client.register(iris_bundle, "iris", alias="production")
            client.register(mixed_bundle, "mixed", alias="production")
        yield url


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path, mixed_bundle: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    """``ferry server --auth`` over the same two models, and an admin key's header."""
    home = tmp_path_factory.mktemp("auth-server")
    settings = Settings(home=home)
    with Registry.from_settings(settings) as registry:
        for name, bundle in (("iris", iris_bundle), ("mixed", mixed_bundle)):
            registry.register(bundle, name)
            registry.set_alias(name, "production", 1)
    store = KeyStore.from_settings(settings)
    try:
        token = store.create("fuzzer", ("admin",)).token
    finally:
        store.database.close()
    with platform_server(home, "--workers", "1", "--auth", log=home / "server.log") as url:
        yield url, {"X-API-Key": token}


def spec_errors(document: dict[str, Any]) -> list[str]:
    return [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(document).iter_errors()]


def documents(
    url: str, names: list[str], headers: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The main document and each model's own one, by path."""
    found = {}
    for path in ["/openapi.json", *(f"/v1/models/{n}/openapi.json" for n in names)]:
        answer = httpx.get(url + path, headers=headers, timeout=30)
        assert answer.status_code == 200, (path, answer.text)
        found[path] = answer.json()
    return found


def test_serve_documents_are_valid(serve_url: str) -> None:
    for path, document in documents(serve_url, ["iris"]).items():
        assert spec_errors(document) == [], path


def test_server_documents_are_valid(server_url: str) -> None:
    found = documents(server_url, ["iris", "mixed"])
    for path, document in found.items():
        assert spec_errors(document) == [], path
    assert "/v1/models/mixed/predict" in found["/v1/models/mixed/openapi.json"]["paths"]
    assert any(p.startswith("/api/v1/") for p in found["/openapi.json"]["paths"])


def assert_clean(found: Findings, document: dict[str, Any], *, destructive: bool = False) -> None:
    assert found.errors == []
    assert found.failures == [], "\n".join(found.failures)
    # every operation meant for this run was exercised: none skipped or filtered unseen
    assert operations(document, destructive=destructive) <= found.tested
    assert found.cases > 0


def test_schemathesis_finds_no_server_error_on_serve(serve_url: str) -> None:
    for path, document in documents(serve_url, ["iris"]).items():
        assert_clean(fuzz(serve_url, path, names=["iris"]), document)


def test_schemathesis_finds_no_server_error_on_server(server_url: str) -> None:
    names = ["iris", "mixed"]
    found = documents(server_url, names)
    for path, document in found.items():
        assert_clean(fuzz(server_url, path, names=names), document)
    main = found["/openapi.json"]
    assert operations(main, destructive=True)  # the control plane's DELETE, PUT, PATCH ...
    assert_clean(
        fuzz(server_url, "/openapi.json", names=names, destructive=True), main, destructive=True
    )


def test_server_with_auth_documents_keys_and_has_no_server_error(
    auth_server: tuple[str, dict[str, str]],
) -> None:
    url, key = auth_server
    names = ["iris", "mixed"]
    found = documents(url, names, key)
    for path, document in found.items():
        assert spec_errors(document) == [], path
        schemes = document["components"]["securitySchemes"]
        assert set(schemes) == {"bearer", "apiKey"}, path
    predict = found["/openapi.json"]["paths"]["/v1/models/{name}/predict"]["post"]
    assert predict["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "401" in predict["responses"]
    one = found["/v1/models/iris/openapi.json"]["paths"]["/v1/models/iris/predict"]["post"]
    assert one["security"] == predict["security"]
    # with the admin key the cases get past auth to the routes themselves
    for path, document in found.items():
        assert_clean(fuzz(url, path, names=names, headers=key), document)


def test_fuzzing_reports_a_server_error() -> None:
    """The harness itself: an operation that answers 500 for some inputs is reported."""

    async def divide(request: Request) -> JSONResponse:
        return JSONResponse({"result": 1 / int(request.query_params["by"])})

    document = {
        "openapi": "3.1.0",
        "info": {"title": "divide", "version": "1"},
        "paths": {
            "/divide": {
                "get": {
                    "parameters": [
                        {
                            "name": "by",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 0, "maximum": 3},
                        }
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }

    async def spec(request: Request) -> JSONResponse:
        return JSONResponse(document)

    app = Starlette(
        routes=[Route("/divide", divide), Route("/openapi.json", spec)],
    )
    with running(app) as url:
        found = fuzz(url, "/openapi.json", names=[])
    assert any("GET /divide: not_a_server_error" in f for f in found.failures), found


# --- /docs in a browser that cannot reach the internet ---------------------------------------


def browse(url: str, tmp_path: Path) -> tuple[str, list[str]]:
    """``url`` in headless chromium after its scripts ran, and the URLs the page requested.

    Offline: every host but 127.0.0.1 fails to resolve and every request that is not to
    loopback goes to a proxy on a dead port (chromium never proxies loopback). The net log
    names each request with the site of the page that made it; chromium's own background
    calls (component updates, accounts) have none and are not the page's."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium is not None, "chromium is not installed"
    net_log = tmp_path / "net.json"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # the tests run as root in a container; nothing untrusted is loaded
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={net_log}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(  # noqa: S603 - chromium with fixed arguments
        command, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(net_log.read_text())
    kinds = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    requested = [
        event["params"]["url"]
        for event in log["events"]
        if kinds[event["type"]] == "URL_REQUEST_START_JOB"
        and event.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1")
    ]
    return done.stdout, requested


def shown_paths(dom: str) -> set[str]:
    """The operation paths Swagger UI rendered (one ``opblock`` per operation)."""
    import re

    return set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))


def test_docs_show_the_operations_offline_on_serve(serve_url: str, tmp_path: Path) -> None:
    dom, requested = browse(f"{serve_url}/docs", tmp_path)
    document = httpx.get(f"{serve_url}/openapi.json").json()
    assert shown_paths(dom) == set(document["paths"])
    assert f"{serve_url}/openapi.json" in requested
    assert f"{serve_url}/docs/assets/swagger-ui-bundle.js" in requested
    assert [u for u in requested if not u.startswith(serve_url + "/")] == []


def test_docs_show_one_models_operations_offline_on_server(server_url: str, tmp_path: Path) -> None:
    dom, requested = browse(f"{server_url}/docs", tmp_path / "all")
    document = httpx.get(f"{server_url}/openapi.json").json()
    assert shown_paths(dom) == set(document["paths"])
    assert 'id="ferry-models"' in dom  # the per-model documents are linked

    dom, requested_one = browse(f"{server_url}/docs?model=mixed", tmp_path / "mixed")
    assert "/v1/models/mixed/predict" in shown_paths(dom)
    assert f"{server_url}/v1/models/mixed/openapi.json" in requested_one
    outside = [u for u in requested + requested_one if not u.startswith(server_url + "/")]
    assert outside == []
