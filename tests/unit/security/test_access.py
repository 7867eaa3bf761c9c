"""Which scope each route needs (server/access.py), as a table over the real route shapes."""

from __future__ import annotations

import pytest

from ferry.security.scopes import Action
from ferry.server.access import AccessPolicy

R, P, W, A = Action.READ, Action.PREDICT, Action.PUBLISH, Action.ADMIN


@pytest.mark.parametrize(
    ("method", "path", "actions", "model"),
    [
        ("POST", "/v1/models/iris/predict", (P,), "iris"),
        ("GET", "/v1/models/iris/predict", (P,), "iris"),
        ("POST", "/v1/models/iris@production/predict", (P,), "iris"),
        ("POST", "/v1/models/iris/versions/2/predict", (P,), "iris"),
        ("POST", "/v1/models/iris/feedback", (P, W), "iris"),
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
    method: str, path: str, actions: tuple[Action, ...], model: str | None
) -> None:
    need = AccessPolicy().requirement(method, path)
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
        "/openapi.json",
    ],
)
def test_public_paths(path: str) -> None:
    assert AccessPolicy().requirement("GET", path) is None


def test_metrics_can_be_public_and_invocations_name_the_single_model() -> None:
    policy = AccessPolicy(public_metrics=True, single_model="iris")
    assert policy.requirement("GET", "/metrics") is None
    need = policy.requirement("POST", "/invocations")
    assert need is not None
    assert need.model == "iris"
