"""Routes for registered models (list, create, get, update, delete) and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.requests import Request
from starlette.responses import Response

from ferry.security.trust import check_may_make_public
from ferry.server.control.routing import (
    ADMIN,
    PUBLISH_ALL,
    PUBLISH_MODEL,
    READ_ALL,
    READ_MODEL,
    RegistryProvider,
    actor_of,
    control_routes,
    principal_of,
)
from ferry.server.control.schemas import (
    AuditPage,
    CreateModelIn,
    ModelOut,
    ModelPage,
    UpdateModelIn,
    audit_event_out,
    model_out,
    page_fields,
)
from ferry.server.routes import RouteTable

Limit = Annotated[int, Query(description="Page size (1-1000).")]
Offset = Annotated[int, Query(description="Items to skip.")]


class ModelRoutes:
    """Handlers are plain functions: FastAPI runs them in its thread pool, off the event loop."""

    def __init__(self, registry: RegistryProvider) -> None:
        self.registry = registry

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["registry"])
        routes.add("/models", self.list_models, "GET", READ_ALL)
        routes.add("/models", self.create_model, "POST", PUBLISH_ALL, status_code=201)
        routes.add("/models/{name}", self.get_model, "GET", READ_MODEL)
        routes.add("/models/{name}", self.update_model, "PATCH", PUBLISH_MODEL)
        routes.add(
            "/models/{name}",
            self.delete_model,
            "DELETE",
            PUBLISH_MODEL,
            status_code=204,
            response_class=Response,
        )
        routes.add("/audit", self.audit, "GET", ADMIN, tags=["admin"])
        return routes

    def list_models(
        self,
        tag: Annotated[
            str | None, Query(description="`key` or `key=value`: models with that tag.")
        ] = None,
        prefix: Annotated[str | None, Query(description="Names starting with this.")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> ModelPage:
        """Registered models, by name."""
        page = self.registry().list_models(tag=tag, name_prefix=prefix, limit=limit, offset=offset)
        return ModelPage(items=[model_out(r) for r in page.items], **page_fields(page))

    def create_model(self, request: Request, body: CreateModelIn) -> ModelOut:
        """Create an empty model (uploading a first version also creates it)."""
        record = self.registry().create_model(
            body.name, description=body.description, tags=body.tags, actor=actor_of(request)
        )
        return model_out(record)

    def get_model(self, name: str) -> ModelOut:
        """One model: description, tags, latest version and aliases."""
        return model_out(self.registry().get_model(name))

    def update_model(self, request: Request, name: str, body: UpdateModelIn) -> ModelOut:
        """Set the description and/or replace the tags (fields left out stay as they are).

        Tagging a model that holds code `public=true` needs the `trust` scope for it."""
        registry = self.registry()
        if body.tags is not None:
            check_may_make_public(principal_of(request), registry, name, body.tags)
        record = registry.update_model(
            name, description=body.description, tags=body.tags, actor=actor_of(request)
        )
        return model_out(record)

    def delete_model(self, request: Request, name: str) -> None:
        """Remove the model with its versions and aliases (their files stay until `ferry gc`)."""
        self.registry().delete_model(name, actor=actor_of(request))

    def audit(self, limit: Limit = 100, offset: Offset = 0) -> AuditPage:
        """Every write to the registry, newest first."""
        registry = self.registry()
        events = registry.audit(limit=limit, offset=offset)
        total = registry.metadata.row_counts().get("audit_log", offset + len(events))
        return AuditPage(
            items=[audit_event_out(e) for e in events], total=total, limit=limit, offset=offset
        )
