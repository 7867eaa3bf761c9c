"""What every control-plane route shares: the registry provider, the route class, error docs,
and who is calling (the actor that the registry's history and build records name)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ferry.errors import InvalidRequest, MalformedBody, first_problem
from ferry.ids import ANONYMOUS
from ferry.registry import Registry
from ferry.security.identity import Principal, principal_id, principal_in
from ferry.security.scopes import Action
from ferry.server.control.schemas import ErrorAnswer
from ferry.server.routes import Protocol, RouteTable, need

RegistryProvider = Callable[[], Registry]
# told (model, version, actor) after a version is registered or an alias moves to it
# (auto-builds, recorded as started by the actor whose write set them off)
VersionHook = Callable[[str, int, str], None]
PREFIX = "/api/v1"
# who may call a control route (README "Access control"): a model's routes need read on it
# to GET and publish on it otherwise; the registry's listing read (publish to create a
# model, its name in the body), and keys, usage and the audit log admin
READ_MODEL = need(Action.READ, on="name")
PUBLISH_MODEL = need(Action.PUBLISH, on="name")
READ_ALL = need(Action.READ)
PUBLISH_ALL = need(Action.PUBLISH)
ADMIN = need(Action.ADMIN)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorAnswer, "description": "The caller's mistake, in Ferry's error shape."}
}


def control_routes(tags: list[str]) -> RouteTable:
    """A table of control-plane routes: Ferry's 400s for invalid parameters, error docs."""
    return RouteTable(
        Protocol.CONTROL, route_class=ControlRoute, tags=tags, responses=ERROR_RESPONSES
    )


class ControlRoute(APIRoute):
    """An APIRoute whose request validation failures are Ferry's 400s, not FastAPI's 422s.

    Path, query and body parameters stay typed (and documented in OpenAPI); a value that does
    not fit is raised as ``InvalidRequest`` naming the field, so the app's one error handler
    answers it in Ferry's error shape.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise invalid_request(exc.errors()) from exc

        return route


def actor_of(request: Request) -> str:
    """The authenticated caller's principal id (an API key's id, ``jwt:<subject>``), as the
    auth layer left it in the ASGI scope; ``anonymous`` when auth is off or the route is open."""
    return principal_id(request.scope) or ANONYMOUS


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller with its scopes, for a route that decides on a body field
    (an upload's ``trust=true``, a ``public=true`` tag); None when auth is off."""
    return principal_in(request.scope)


def invalid_request(errors: Sequence[Any]) -> InvalidRequest:
    """The first of pydantic's/FastAPI's validation errors as an ``InvalidRequest``."""
    field, message = first_problem(errors)
    field = field or "body"
    if errors and errors[0].get("type") == "json_invalid":
        return MalformedBody(f"request body is not valid JSON: {message}", field="body")
    return InvalidRequest(f"{field}: {message}", field=field, problems=len(errors))
