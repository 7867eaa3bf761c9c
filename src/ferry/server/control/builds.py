"""Routes for image build jobs: start one for a version, list them, follow one's log.

``POST /models/{name}/versions/{n}/builds`` answers 202 at once with the queued build; the
build runs in a background thread of this server process. ``GET .../builds/{id}`` shows its
status and the log from ``log_offset`` on (poll with the returned ``next_offset`` to stream).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field
from starlette.requests import Request

from ferry.config.settings import Settings
from ferry.errors import BuildInProgress, BuildNotFound, InvalidRequest
from ferry.packaging.builders import BUILDERS
from ferry.packaging.context import check_image_ref
from ferry.packaging.images import ImageOptions
from ferry.packaging.jobs import BuildJobs, BuildRecord, BuildStore
from ferry.registry import names
from ferry.server.control.routing import (
    PUBLISH_MODEL,
    READ_MODEL,
    RegistryProvider,
    actor_of,
    control_routes,
)
from ferry.server.control.schemas import Body
from ferry.server.routes import RouteTable

log = logging.getLogger(__name__)


class BuildIn(Body):
    tag: str | None = Field(default=None, description="Image name; default localhost/ferry/M:V.")
    base: str | None = Field(default=None, description="Base image; default the sklearn stack.")
    builder: str | None = Field(default=None, description="docker, podman or buildah.")
    port: int = Field(default=8080, ge=1, le=65535)
    push: str | None = Field(default=None, description="Push to REGISTRY/REPO:TAG when built.")
    tls_verify: bool = Field(default=True, description="Verify the push registry's TLS.")


class BuildOut(BaseModel):
    id: str
    model: str
    version: int
    status: str = Field(description="queued, running, succeeded or failed")
    options: dict[str, Any]
    image: str | None
    size: int | None = Field(description="Bytes, uncompressed, once built.")
    pushed: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    actor: str = Field(description="Who started it (a key's id, jwt:<subject>, anonymous).")
    log: str = Field(description="The build log from log_offset on.")
    log_offset: int
    next_offset: int = Field(description="Where the next poll's log_offset should start.")


class BuildPage(BaseModel):
    items: list[BuildOut]


def build_out(record: BuildRecord, offset: int = 0) -> BuildOut:
    text = record.log[offset:]
    return BuildOut(
        id=record.id,
        model=record.model,
        version=record.version,
        status=record.status,
        options=record.options,
        image=record.image,
        size=record.size,
        pushed=record.pushed,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        finished_at=record.finished_at,
        actor=record.actor,
        log=text,
        log_offset=offset,
        next_offset=offset + len(text),
    )


AUTOBUILD_TAG = "ferry.autobuild"  # a model tag: "true" opts the model in
AUTOBUILD_PUSH_TAG = "ferry.autobuild.push"  # optional: where auto-built images are pushed


class BuildRoutes:
    def __init__(self, jobs: BuildJobs) -> None:
        self.jobs = jobs

    def auto_build(self, name: str, version: int, actor: str) -> None:
        """Start a build when the model opted in (tag ``ferry.autobuild=true``), recorded as
        started by ``actor`` (whose upload or alias move set it off); a build already running
        for the version is left alone."""
        tags = self.jobs.registry().get_model(name).tags
        if tags.get(AUTOBUILD_TAG, "").lower() not in ("true", "1", "yes"):
            return
        options = ImageOptions(push=tags.get(AUTOBUILD_PUSH_TAG) or None)
        try:
            build = self.jobs.start(name, version, options, actor)
        except BuildInProgress:
            return
        log.info("auto-build started", extra={"model": name, "version": version, "build": build.id})

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["builds"])
        base = "/models/{name}/versions/{version}/builds"
        routes.add(base, self.start, "POST", PUBLISH_MODEL, status_code=202)
        routes.add(base, self.list_builds, "GET", READ_MODEL)
        routes.add(base + "/{build_id}", self.get_build, "GET", READ_MODEL)
        return routes

    def start(
        self, request: Request, name: str, version: int, body: BuildIn | None = None
    ) -> BuildOut:
        """Queue an image build of the version (one at a time per version: 409 otherwise)."""
        body = body or BuildIn()
        for field in ("tag", "base", "push"):
            value = getattr(body, field)
            if value is not None:
                check_image_ref(value, field)
        options = ImageOptions(
            builder=body.builder,
            base=body.base,
            tag=body.tag,
            port=body.port,
            push=body.push,
            tls_verify=body.tls_verify,
        )
        if body.builder is not None and body.builder not in BUILDERS:
            raise InvalidRequest(
                f"builder {body.builder!r} is not one of {', '.join(BUILDERS)}", field="builder"
            )
        record = self.jobs.start(
            names.check_name(name), names.check_version(version), options, actor_of(request)
        )
        return build_out(record)

    def list_builds(self, name: str, version: int) -> BuildPage:
        """The version's builds, newest first (logs left out: fetch one build for its log)."""
        records = self.jobs.store.list(names.check_name(name), names.check_version(version))
        return BuildPage(items=[build_out(r, len(r.log)) for r in records])

    def get_build(
        self,
        name: str,
        version: int,
        build_id: str,
        log_offset: Annotated[
            int, Query(ge=0, description="Return the log from this character on.")
        ] = 0,
    ) -> BuildOut:
        """A build's status and its log from ``log_offset`` on."""
        record = self.jobs.store.get(build_id)
        if record.model != name or record.version != version:
            raise BuildNotFound(f"{name} version {version} has no build {build_id!r}")
        return build_out(record, min(log_offset, len(record.log)))


def build_routes(registry: RegistryProvider, settings: Settings) -> BuildRoutes:
    """Build routes over the registry's own database (where the ``builds`` table lives)."""
    from ferry.config.paths import database_url

    return BuildRoutes(BuildJobs(BuildStore(database_url(settings)), registry))
