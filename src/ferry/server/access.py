"""Which scope each request needs, from its method and path alone (no body is read).

Decisions (README "Access control"):
- public: health and readiness probes (``/healthz``, ``/readyz``, ``/ping``, ``/health``,
  ``/version``, ``/v2``, ``/v2/health/*``) so orchestrators need no key, and the API docs
  (``/docs``, ``/redoc``, ``/openapi.json``) so the try-it page loads; its calls need a key.
- ``/metrics``: ``read`` on every model (it names them all), or public with
  ``FERRY_PUBLIC_METRICS=true`` for a scraper without credentials.
- predictions (native POST and GET, MLflow, V2 ``infer``): ``predict:<model>``; ground truth
  for them (``POST /v1/models/<m>/feedback``): ``predict`` or ``publish`` on the model.
- data-plane model metadata (``GET /v1/models/<m>``, ``/v2/models/<m>``): ``read`` or
  ``predict`` on the model; listings across models need a scope for ``*``.
- ``/api/v1/keys``, ``/api/v1/usage``, ``/api/v1/audit``: ``admin``.
- ``/api/v1/models/<m>/...``: GET ``read:<m>``, any other method ``publish:<m>``;
  ``POST /api/v1/models`` (the name is in the body) needs ``publish`` for ``*``. Two body
  fields need ``trust:<m>`` on top, checked by their routes (``ferry.security.trust``): an
  upload's ``trust=true``, and a ``public=true`` tag on a model that holds code.
- anything else: GET ``read`` for ``*``, other methods ``admin`` (unknown routes stay closed).
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.security.scopes import Action, Requirement, model_of

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/ping",
        "/health",
        "/version",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/docs/assets/swagger-ui-bundle.js",  # the docs' assets (server/docs.py ASSET_FILES)
        "/docs/assets/swagger-ui.css",
        "/docs/assets/redoc.standalone.js",
        "/docs/assets/favicon.png",
        "/redoc",
        "/openapi.json",
        "/favicon.ico",
    }
)
ADMIN_PREFIXES = ("/api/v1/keys", "/api/v1/usage", "/api/v1/audit")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_OR_PREDICT = (Action.READ, Action.PREDICT)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    public_metrics: bool = False
    single_model: str | None = None  # ``/invocations`` on a one-model server

    def requirement(self, method: str, path: str) -> Requirement | None:
        """What ``method path`` needs; None: open to everyone."""
        if path in PUBLIC_PATHS:
            return None
        if path == "/metrics":
            return None if self.public_metrics else Requirement((Action.READ,))
        if path.startswith("/api/"):
            return _control(method, path)
        parts = path.split("/")
        reading = method in READ_METHODS
        if path == "/invocations":
            return Requirement((Action.PREDICT,), self.single_model)
        if len(parts) == 4 and parts[1] == "mlflow" and parts[3] == "invocations":
            return Requirement((Action.PREDICT,), model_of(parts[2]))
        if len(parts) >= 4 and parts[1] in ("v1", "v2") and parts[2] == "models" and parts[3]:
            model = model_of(parts[3])
            last = parts[-1]
            if (parts[1], last) in (("v1", "predict"), ("v2", "infer")):
                return Requirement((Action.PREDICT,), model)
            if (parts[1], last) == ("v1", "feedback") and not reading:
                return Requirement((Action.PREDICT, Action.PUBLISH), model)
            if reading:
                return Requirement(_READ_OR_PREDICT, model)
            return Requirement((Action.ADMIN,))
        if path in ("/v1/models", "/v2/models") and reading:
            return Requirement(_READ_OR_PREDICT)
        return Requirement((Action.READ,)) if reading else Requirement((Action.ADMIN,))


def _control(method: str, path: str) -> Requirement:
    if path.startswith(ADMIN_PREFIXES):
        return Requirement((Action.ADMIN,))
    reading = method in READ_METHODS
    parts = path.split("/")  # ['', 'api', 'v1', 'models', name, ...]
    if len(parts) >= 5 and parts[1:4] == ["api", "v1", "models"] and parts[4]:
        model = parts[4]
        return Requirement((Action.READ if reading else Action.PUBLISH,), model)
    if path.rstrip("/") == "/api/v1/models":
        return Requirement((Action.READ if reading else Action.PUBLISH,))
    return Requirement((Action.READ,)) if reading else Requirement((Action.ADMIN,))


def is_write(method: str) -> bool:
    return method not in READ_METHODS
