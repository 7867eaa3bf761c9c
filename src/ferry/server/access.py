"""Which scope each request needs, from its method and path alone (no body is read): the
access each route declares in the route table (``routes.py``), and for a path no route
answers, ``read`` on every model to GET it and ``admin`` for anything else (an unknown route
stays closed; it answers 404 or 405 to a caller who may see it).

The decisions (README "Access control"), declared with the routes:
- public: health and readiness probes (``/healthz``, ``/readyz``, ``/ping``, ``/health``,
  ``/version``, ``/v2``, ``/v2/health/*``) so orchestrators need no key, and the API docs
  (``/docs``, ``/redoc``, ``/openapi.json`` and their assets) so the try-it page loads; its
  calls need a key.
- ``/metrics``: ``read`` on every model (it names them all), or public with
  ``FERRY_PUBLIC_METRICS=true`` for a scraper without credentials.
- predictions (native POST and GET, KServe V1 ``:predict``, MLflow, V2 ``infer``):
  ``predict:<model>``; ground truth for them (``POST /v1/models/<m>/feedback``): ``predict``
  or ``publish`` on the model.
- data-plane model metadata (``GET /v1/models/<m>``, ``/v2/models/<m>``): ``read`` or
  ``predict`` on the model; listings across models need a scope for ``*``.
- ``/api/v1/keys``, ``/api/v1/usage``, ``/api/v1/audit``: ``admin``.
- ``/api/v1/models/<m>/...``: GET ``read:<m>``, any other method ``publish:<m>``;
  ``POST /api/v1/models`` (the name is in the body) needs ``publish`` for ``*``. Two body
  fields need ``trust:<m>`` on top, checked by their routes (``ferry.security.trust``): an
  upload's ``trust=true``, and a ``public=true`` tag on a model that holds code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.security.scopes import Action, Requirement
from ferry.server.routes import RouteTable

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNKNOWN_READ = Requirement((Action.READ,))
_UNKNOWN_WRITE = Requirement((Action.ADMIN,))


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    routes: RouteTable
    public_metrics: bool = False
    single_model: str | None = None  # ``/invocations`` on a one-model server

    def requirement(self, method: str, path: str) -> Requirement | None:
        """What ``method path`` (a route path) needs; None: open to everyone."""
        reading = method in READ_METHODS
        found = self.routes.match("GET" if reading else method, path)
        if found is None:
            return _UNKNOWN_READ if reading else _UNKNOWN_WRITE
        route, params = found
        return route.access.requirement(
            params, single_model=self.single_model, public_metrics=self.public_metrics
        )


def is_write(method: str) -> bool:
    return method not in READ_METHODS
