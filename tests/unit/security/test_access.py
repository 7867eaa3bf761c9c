"""Which scope each route needs (server/access.py), as a table over the real route shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config.settings import Settings
from ferry.security.scopes import Action
from ferry.server.access import AccessPolicy
from ferry.server.app import Features, create_app
from ferry.server.platform import registry_source
from ferry.server.routes import RouteTable
from ferry.server.state import ferry_state

R, P, W, A = Action.READ, Action.PREDICT, Action.PUBLISH, Action.ADMIN


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> RouteTable:
    """The route table of a real ``ferry server`` app (every feature on)."""
    settings = Settings(home=Path(tmp_path_factory.mktemp("home")))
    features = Features(control=True, monitoring=True, drift_jobs=True, alerting=True)
    return ferry_state(create_app(settings, registry_source(settings), features)).routes


@pytest.mark.parametrize(
    ("method", "path", "actions", "model"),
    [
        ("POST", "/v1/models/iris/predict", (P,), "iris"),
        ("GET", "/v1/models/iris/predict", (P,), "iris"),
        ("POST", "/v1/models/iris@production/predict", (P,), "iris"),
        ("POST", "/v1/models/iris/versions/2/predict", (P,), "iris"),
        ("POST", "/v1/models/iris/feedback", (P, W), "iris"),
        ("POST", "/v1/models/iris:predict", (P,), "iris"),  # KServe V1 (was admin-only)
        ("POST", "/v1/models/iris@prod:predict", (P,), "iris"),
        ("GET", "/v1/models/iris/openapi.json", (R, P), "iris"),
        ("GET", "/api/v1/models/iris/versions/1/builds", (R,), "iris"),
        ("POST", "/api/v1/models/iris/versions/1/builds", (W,), "iris"),
        ("POST", "/api/v1/models/a/b/versions", (W,), "a/b"),  # :path, answered 400 by the route
        ("GET", "/api/v1/models/iris/predictions", (R,), "iris"),
        ("GET", "/api/v1/drift/7", (R,), None),
        ("POST", "/api/v1/telemetry", (A,), None),
        ("GET", "/v1/models/iris/performance", (R, P), "iris"),
        ("POST", "/v2/models/iris/infer", (P,), "iris"),
        ("POST", "/v2/models/iris/versions/1/infer", (P,), "iris"),
        ("POST", "/mlflow/iris/invocations", (P,), "iris"),
        ("POST", "/invocations", (P,), None),
        ("GET", "/v1/models/iris", (R, P), "iris"),
        ("GET", "/v2/models/iris/ready", (R, P), "iris"),
        ("GET", "/v1/models", (R, P), None),
        ("GET", "/metrics", (R,), None),
        ("GET", "/api/v1/models", (R,), None),
        ("POST", "/api/v1/models", (W,), None),
        ("GET", "/api/v1/models/iris/versions/1", (R,), "iris"),
        ("POST", "/api/v1/models/iris/versions", (W,), "iris"),
        ("PUT", "/api/v1/models/iris/aliases/production", (W,), "iris"),
        ("DELETE", "/api/v1/models/iris", (W,), "iris"),
        ("PATCH", "/api/v1/models/iris/versions/1", (W,), "iris"),
        ("GET", "/api/v1/keys", (A,), None),
        ("POST", "/api/v1/keys", (A,), None),
        ("DELETE", "/api/v1/keys/abc", (A,), None),
        ("GET", "/api/v1/usage", (A,), None),
        ("GET", "/api/v1/audit", (A,), None),
        ("GET", "/ui/anything", (R,), None),
        ("POST", "/some/new/route", (A,), None),
        ("PUT", "/api/v1/somewhere", (A,), None),
    ],
)
def test_requirements(
    routes: RouteTable, method: str, path: str, actions: tuple[Action, ...], model: str | None
) -> None:
    need = AccessPolicy(routes).requirement(method, path)
    assert need is not None
    assert (need.actions, need.model) == (actions, model)


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/ping",
        "/health",
        "/version",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/docs",
        "/redoc",
        "/docs/assets/swagger-ui-bundle.js",
        "/favicon.ico",
        "/openapi.json",
    ],
)
def test_public_paths(routes: RouteTable, path: str) -> None:
    assert AccessPolicy(routes).requirement("GET", path) is None


def test_metrics_can_be_public_and_invocations_name_the_single_model(routes: RouteTable) -> None:
    policy = AccessPolicy(routes, public_metrics=True, single_model="iris")
    assert policy.requirement("GET", "/metrics") is None
    need = policy.requirement("POST", "/invocations")
    assert need is not None
    assert need.model == "iris"
