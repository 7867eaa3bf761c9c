"""Routes for versions: list and search, get, tags, metrics, lineage, download."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse

from ferry.security.trust import RESERVED_VERSION_TAGS, check_version_tags
from ferry.server.control.config import ControlConfig
from ferry.server.control.models import Limit, Offset
from ferry.server.control.routing import (
    PUBLISH_MODEL,
    READ_MODEL,
    RegistryProvider,
    actor_of,
    control_routes,
)
from ferry.server.control.schemas import (
    LineageGraphOut,
    MetricsIn,
    UpdateVersionIn,
    VersionOut,
    VersionPage,
    lineage_graph_out,
    page_fields,
    version_out,
)
from ferry.server.control.workdirs import WorkDir
from ferry.server.routes import RouteTable

ARCHIVE_MEDIA_TYPE = "application/gzip"


class VersionRoutes:
    def __init__(self, registry: RegistryProvider, config: ControlConfig) -> None:
        self.registry = registry
        self.config = config

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["registry"])
        base = "/models/{name}/versions"
        routes.add(base, self.list_versions, "GET", READ_MODEL)
        routes.add(base + "/{version}", self.get_version, "GET", READ_MODEL)
        routes.add(base + "/{version}", self.update_version, "PATCH", PUBLISH_MODEL)
        routes.add(base + "/{version}/metrics", self.log_metrics, "POST", PUBLISH_MODEL)
        routes.add(base + "/{version}/lineage", self.lineage, "GET", READ_MODEL)
        routes.add(
            base + "/{version}/download",
            self.download,
            "GET",
            READ_MODEL,
            response_class=FileResponse,
            responses={200: {"content": {ARCHIVE_MEDIA_TYPE: {}}, "description": "A .tar.gz"}},
        )
        return routes

    def list_versions(
        self,
        name: str,
        tag: Annotated[
            str | None, Query(description="`key` or `key=value`: versions with that tag.")
        ] = None,
        metric: Annotated[
            str | None, Query(description="A metric condition such as `acc>=0.9`.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> VersionPage:
        """The model's versions, newest first."""
        registry = self.registry()
        page = registry.list_versions(name, tag=tag, metric=metric, limit=limit, offset=offset)
        aliases = registry.get_model(name).aliases
        return VersionPage(items=[version_out(r, aliases) for r in page.items], **page_fields(page))

    def get_version(self, name: str, version: int) -> VersionOut:
        """One version: flavor, signature, files, metrics, params, tags, lineage, aliases."""
        registry = self.registry()
        record = registry.get_version(name, version)
        return version_out(record, registry.get_model(name).aliases)

    def update_version(
        self, request: Request, name: str, version: int, body: UpdateVersionIn
    ) -> VersionOut:
        """Add or change tags (`replace: true` makes them exactly the given ones). The
        server's own trust tags (`ferry.trusted_by`, `ferry.code`) cannot be sent, and stay."""
        check_version_tags(body.tags)
        registry = self.registry()
        tags = body.tags
        if body.replace:
            kept = registry.get_version(name, version).tags
            tags = {**{k: v for k, v in kept.items() if k in RESERVED_VERSION_TAGS}, **tags}
        record = registry.set_tags(
            name, version, tags, replace=body.replace, actor=actor_of(request)
        )
        return version_out(record, registry.get_model(name).aliases)

    def log_metrics(self, request: Request, name: str, version: int, body: MetricsIn) -> VersionOut:
        """Record metrics measured after registration (an existing key is overwritten)."""
        registry = self.registry()
        record = registry.log_metrics(name, version, body.metrics, actor=actor_of(request))
        return version_out(record, registry.get_model(name).aliases)

    def lineage(self, name: str, version: int) -> LineageGraphOut:
        """The version's ancestors (through parents) and descendants (versions naming it)."""
        return lineage_graph_out(self.registry().lineage(name, version))

    def download(self, name: str, version: int) -> FileResponse:
        """The version as a bundle `.tar.gz` (unpack it and `ferry serve` the folder)."""
        registry = self.registry()
        registry.get_version(name, version)  # 404 before any work
        work = WorkDir(self.config.staging_root(), "download")  # locked: swept if we die
        try:
            archive = registry.archive(name, version, work.path / f"{name}-{version}.tar.gz")
        except BaseException:
            work.remove()
            raise
        return FileResponse(
            archive,
            media_type=ARCHIVE_MEDIA_TYPE,
            filename=archive.name,
            background=BackgroundTask(work.remove),
        )
