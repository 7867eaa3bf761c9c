"""The one route table (server/routes.py): the app, the fast path, the access policy and the
error shapes all come from it, and a route outside it cannot be served."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ferry.config.settings import Settings
from ferry.security.scopes import Action
from ferry.server.app import Features, create_app
from ferry.server.platform import registry_source
from ferry.server.routes import PUBLIC, Protocol, RouteTable, need, route_path
from ferry.server.state import ferry_state


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(home=Path(tmp_path_factory.mktemp("home")))
    features = Features(control=True, monitoring=True, drift_jobs=True, alerting=True)
    return create_app(settings, registry_source(settings), features)


def test_every_served_route_is_in_the_table_once(platform: FastAPI) -> None:
    table = ferry_state(platform).routes
    declared = [(r.method, r.path) for r in table]
    assert len(declared) == len(set(declared)), "a route declared twice"
    served = {
        (method, r.path)
        for r in platform.router.routes
        if isinstance(r, APIRoute)
        for method in r.methods
    }
    assert served == set(declared)
    assert len(served) > 60  # data plane, control plane, monitoring, docs


def test_a_route_added_behind_the_tables_back_is_refused() -> None:
    table = RouteTable()
    table.add("/a", ok, "GET", PUBLIC)
    app = FastAPI()
    app.add_api_route("/b", ok, methods=["POST"])
    with pytest.raises(RuntimeError, match="POST /b is not in the route table"):
        table.install(app)


def test_a_route_needs_its_access() -> None:
    table = RouteTable()
    with pytest.raises(TypeError):
        table.add("/a", ok, "GET")  # type: ignore[call-arg]


def test_the_fast_path_takes_the_prediction_posts_only(platform: FastAPI) -> None:
    table = ferry_state(platform).routes
    fast = {r.path for r in table if r.fast}
    assert fast == {
        "/v1/models/{name}/predict",
        "/v1/models/{name}/versions/{version}/predict",
        "/invocations",
        "/mlflow/{name}/invocations",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    }
    found = table.fast_match("/v1/models/iris@prod/versions/3/predict")
    assert found is not None
    assert found[1] == {"name": "iris@prod", "version": "3"}
    assert table.fast_match("/v2/models/iris/infer") is not None
    assert table.fast_match("/mlflow/iris/invocations") is not None
    for slow in ("/v1/models/iris:predict", "/v1/models/iris/feedback", "/api/v1/models"):
        assert table.fast_match(slow) is None
    with pytest.raises(ValueError, match="POST only"):
        table.add("/x", ok, "GET", PUBLIC, fast=True)


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/v2/models/iris/infer", Protocol.V2),
        ("/v2/no/such/route", Protocol.V2),  # by the routes sharing its first segment
        ("/v2", Protocol.V2),
        ("/invocations", Protocol.MLFLOW),
        ("/mlflow/iris/invocations", Protocol.MLFLOW),
        ("/ping", Protocol.MLFLOW),
        ("/v1/models/iris/predict", Protocol.NATIVE),
        ("/v1/models/iris:predict", Protocol.NATIVE),
        ("/api/v1/models/iris/versions", Protocol.CONTROL),
        ("/api/v1/nothing", Protocol.CONTROL),
        ("/healthz", Protocol.OPS),
        ("/nowhere", Protocol.NATIVE),
    ],
)
def test_each_path_has_one_protocol(platform: FastAPI, path: str, protocol: Protocol) -> None:
    assert ferry_state(platform).routes.protocol_of(path) is protocol


def test_literal_segments_match_before_parameters_and_paths_span_segments() -> None:
    table = RouteTable()
    table.add("/m/{name}", ok, "GET", need(Action.READ, on="name"))
    table.add("/m/{name:path}/files", ok, "POST", need(Action.PUBLISH, on="name"))
    table.add("/{anything}", ok, "GET", PUBLIC)
    found = table.match("GET", "/m/iris")
    assert found is not None
    assert found[1] == {"name": "iris"}
    deep = table.match("POST", "/m/a/b/files")
    assert deep is not None
    assert deep[1] == {"name": "a/b"}
    top = table.match("GET", "/m")
    assert top is not None
    assert top[0].path == "/{anything}"
    assert table.match("DELETE", "/m/iris") is None


def test_a_mounted_apps_route_path_drops_its_prefix() -> None:
    scope = {"type": "http", "path": "/ml/v1/models/iris/predict", "root_path": "/ml"}
    assert route_path(scope) == "/v1/models/iris/predict"
    assert route_path({"type": "http", "path": "/v2", "root_path": ""}) == "/v2"
