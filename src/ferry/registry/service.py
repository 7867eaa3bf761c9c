"""Registry: models, immutable numbered versions, aliases and lineage over two stores.

``register`` stores every file of a verified bundle in the artifact store first (content
addressed, so a crash leaves only unreferenced blobs, swept by ``gc``), then inserts the version
in one database transaction. A version is therefore visible only when all its files are stored.
A Registry is thread-safe; open a new one in each process after ``fork()``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from types import TracebackType

from ferry.config.settings import Settings, get_settings
from ferry.errors import InvalidRequest
from ferry.ids import ANONYMOUS
from ferry.model.bundle import verify_files
from ferry.model.manifest import read_manifest
from ferry.registry import names
from ferry.registry.artifacts import ArtifactStore, open_artifact_store
from ferry.registry.blobs import ensure_stored, store_files
from ferry.registry.bundles import check_paths, checkout, content_sha256, materialize, write_archive
from ferry.registry.filters import check_page, parse_metric_filter, parse_tag_filter
from ferry.registry.gc import collect_garbage
from ferry.registry.lineage import lineage_graph
from ferry.registry.metadata import MetadataStore, NewVersion, open_metadata_store
from ferry.registry.records import (
    AliasEvent,
    AliasRecord,
    AuditEvent,
    GcReport,
    Lineage,
    LineageGraph,
    ModelRecord,
    Page,
    VersionKey,
    VersionRecord,
)

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore) -> None:
        self.metadata = metadata
        self.artifacts = artifacts

    @classmethod
    def open(
        cls,
        database_url: str,
        artifacts_url: str,
        *,
        s3_endpoint_url: str | None = None,
        migrate: bool = True,
    ) -> Registry:
        """Open both stores; ``migrate`` first brings the database to the newest schema."""
        metadata = open_metadata_store(database_url)
        try:
            if migrate:
                metadata.migrate()
            artifacts = open_artifact_store(artifacts_url, endpoint_url=s3_endpoint_url)
        except BaseException:
            metadata.close()
            raise
        return cls(metadata, artifacts)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, migrate: bool = True) -> Registry:
        """FERRY_DATABASE_URL, FERRY_ARTIFACTS and FERRY_S3_ENDPOINT_URL, defaulting to a
        SQLite file and a folder under FERRY_HOME."""
        from ferry.config.paths import artifacts_url, database_url

        settings = settings or get_settings()
        return cls.open(
            database_url(settings),
            artifacts_url(settings),
            s3_endpoint_url=settings.s3_endpoint_url,
            migrate=migrate,
        )

    def close(self) -> None:
        self.metadata.close()
        self.artifacts.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- models -------------------------------------------------------------------------------
    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        actor: str = ANONYMOUS,
    ) -> ModelRecord:
        return self.metadata.create_model(
            names.check_name(name),
            description=names.check_text(description, "description", names.MAX_DESCRIPTION),
            tags=names.check_tags(tags),
            actor=names.check_actor(actor),
        )

    def get_model(self, name: str) -> ModelRecord:
        return self.metadata.get_model(names.check_name(name))

    def list_models(
        self,
        *,
        tag: str | None = None,
        name_prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ModelRecord]:
        check_page(limit, offset)
        if name_prefix is not None:
            names.check_text(name_prefix, "name_prefix", 128)
        return self.metadata.list_models(
            tag=parse_tag_filter(tag), name_prefix=name_prefix, limit=limit, offset=offset
        )

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        actor: str = ANONYMOUS,
    ) -> ModelRecord:
        """Set the description and/or replace the model's tags (None leaves a field alone)."""
        if description is not None:
            names.check_text(description, "description", names.MAX_DESCRIPTION)
        return self.metadata.update_model(
            names.check_name(name),
            description=description,
            tags=None if tags is None else names.check_tags(tags),
            actor=names.check_actor(actor),
        )

    def delete_model(self, name: str, *, actor: str = ANONYMOUS) -> None:
        """Remove the model, its versions and aliases; their blobs stay until ``gc``."""
        self.metadata.delete_model(names.check_name(name), actor=names.check_actor(actor))

    # --- versions -----------------------------------------------------------------------------
    def register(
        self,
        bundle_dir: Path,
        name: str,
        *,
        parent: int | VersionKey | None = None,
        lineage: Lineage | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        actor: str = ANONYMOUS,
        create_model: bool = True,
        audit: dict[str, object] | None = None,
    ) -> VersionRecord:
        """Register the bundle folder as the next version of ``name``.

        ``audit`` adds details to the version's audit record (e.g. the pickle scan's verdict).

        Same content as an existing version of the model: that version is returned unchanged.
        ``parent`` is a version of the same model, or ``(model, version)`` of another one.
        """
        bundle_dir = Path(bundle_dir)
        names.check_name(name)
        names.check_actor(actor)
        names.check_text(description, "description", names.MAX_DESCRIPTION)
        checked_metrics = names.check_metrics(metrics)
        checked_tags = names.check_tags(tags)
        checked_params = names.check_tags(params, "params")
        lineage = _check_lineage(lineage or Lineage())
        parent_key = _parent_key(name, parent)
        manifest = read_manifest(bundle_dir)
        check_paths(manifest)
        verify_files(bundle_dir, manifest.files)
        digest = content_sha256(manifest)
        if not create_model:
            self.metadata.get_model(name)  # ModelNotFound before anything is uploaded
        existing = self.metadata.find_version(name, digest)
        if existing is not None:
            return existing
        if parent_key is not None:
            self.metadata.get_version(*parent_key)  # not found: fail before uploading
        store_files(self.artifacts, bundle_dir, manifest.files)
        new = NewVersion(
            model=name,
            sha256=digest,
            flavor=manifest.flavor,
            signature=manifest.signature,
            size=sum(f.size for f in manifest.files),
            requirements=list(manifest.requirements),
            metrics=checked_metrics,
            params=checked_params,
            tags=checked_tags,
            description=description or manifest.description,
            parent=parent_key,
            lineage=lineage,
            files=list(manifest.files),
            manifest=manifest.model_copy(update={"name": name, "version": None}),
            audit=dict(audit or {}),
        )
        record, created = self.metadata.add_version(new, actor=actor, create_model=create_model)
        if created:
            ensure_stored(self.artifacts, bundle_dir, record.files)
            log.info(
                "version registered",
                extra={"model": name, "version": record.version, "sha256": digest},
            )
        return record

    def get_version(self, name: str, version: int) -> VersionRecord:
        return self.metadata.get_version(names.check_name(name), names.check_version(version))

    def resolve(
        self, ref: str, *, version: int | None = None, alias: str | None = None
    ) -> VersionRecord:
        """``iris`` (its ``production`` alias if set, else the latest version), ``iris@staging``,
        ``iris/3`` or ``iris:3``; or a bare name with ``version=`` or ``alias=``."""
        parsed = names.parse_ref(ref)
        if version is not None or alias is not None:
            if parsed.version is not None or parsed.alias is not None or (version and alias):
                raise InvalidRequest(
                    f"{ref!r}: give a version or an alias once, not both", field="ref"
                )
            parsed = names.Ref(
                parsed.model,
                None if version is None else names.check_version(version),
                None if alias is None else names.check_alias(alias),
            )
        if parsed.version is not None:
            return self.metadata.get_version(parsed.model, parsed.version)
        if parsed.alias is not None:
            target = self.metadata.get_alias(parsed.model, parsed.alias)
            return self.metadata.get_version(parsed.model, target.version)
        model = self.metadata.get_model(parsed.model)
        if names.PRODUCTION in model.aliases:
            return self.metadata.get_version(parsed.model, model.aliases[names.PRODUCTION])
        return self.metadata.latest_version(parsed.model)

    def list_versions(
        self,
        name: str,
        *,
        tag: str | None = None,
        metric: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[VersionRecord]:
        """Newest first; ``tag`` is ``key`` or ``key=value``, ``metric`` like ``acc>=0.9``."""
        check_page(limit, offset)
        return self.metadata.list_versions(
            names.check_name(name),
            tag=parse_tag_filter(tag),
            metric=parse_metric_filter(metric),
            limit=limit,
            offset=offset,
        )

    def optimized_copy(self, name: str, version: int) -> VersionRecord | None:
        """The newest version `ferry optimize` made of ``name/version`` (tagged
        ``optimized``, with that version as parent), or None."""
        page = self.list_versions(name, tag=names.OPTIMIZED_TAG, limit=1000)
        for record in page.items:  # newest first
            if record.parent == (name, version):
                return record
        return None

    def set_tags(
        self,
        name: str,
        version: int,
        tags: dict[str, str],
        *,
        replace: bool = False,
        actor: str = ANONYMOUS,
    ) -> VersionRecord:
        """Add or change tags (``replace=True``: the version's tags become exactly ``tags``)."""
        return self.metadata.set_version_tags(
            names.check_name(name),
            names.check_version(version),
            names.check_tags(tags),
            replace=replace,
            actor=names.check_actor(actor),
        )

    def log_metrics(
        self, name: str, version: int, metrics: dict[str, float], *, actor: str = ANONYMOUS
    ) -> VersionRecord:
        return self.metadata.log_metrics(
            names.check_name(name),
            names.check_version(version),
            names.check_metrics(metrics),
            actor=names.check_actor(actor),
        )

    def lineage(self, name: str, version: int) -> LineageGraph:
        return lineage_graph(self.metadata, names.check_name(name), names.check_version(version))

    # --- aliases ------------------------------------------------------------------------------
    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str = ANONYMOUS
    ) -> AliasRecord:
        """Point ``alias`` at ``version`` (creates or moves it; a move is kept in history)."""
        return self.metadata.set_alias(
            names.check_name(name),
            names.check_alias(alias),
            names.check_version(version),
            actor=names.check_actor(actor),
        )

    def delete_alias(self, name: str, alias: str, *, actor: str = ANONYMOUS) -> None:
        self.metadata.delete_alias(
            names.check_name(name), names.check_alias(alias), actor=names.check_actor(actor)
        )

    def list_aliases(self, name: str) -> list[AliasRecord]:
        return self.metadata.list_aliases(names.check_name(name))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        return self.metadata.alias_history(
            names.check_name(name), None if alias is None else names.check_alias(alias)
        )

    # --- files --------------------------------------------------------------------------------
    def materialize(self, name: str, version: int, dest: Path, *, overwrite: bool = False) -> Path:
        """Write the version as a bundle folder at ``dest`` (checksums verified), atomically."""
        return materialize(
            self.artifacts, self.get_version(name, version), Path(dest), overwrite=overwrite
        )

    def checkout(self, name: str, version: int, cache_root: Path) -> Path:
        """The version's bundle folder under ``cache_root``, materialized on first use."""
        return checkout(self.artifacts, self.get_version(name, version), Path(cache_root))

    def archive(self, name: str, version: int, dest_file: Path) -> Path:
        """A ``.tar.gz`` of the version's bundle (entries relative to the bundle root)."""
        record = self.get_version(name, version)
        dest_file = Path(dest_file)
        dest_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest_file.parent, prefix=".ferry-archive-") as tmp:
            bundle = materialize(self.artifacts, record, Path(tmp) / "bundle")
            return write_archive(bundle, dest_file)

    # --- audit and maintenance ----------------------------------------------------------------
    def audit(self, *, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
        """Newest first."""
        check_page(limit, offset)
        return self.metadata.audit(limit=limit, offset=offset)

    def gc(self, *, grace_seconds: float = 3600.0) -> GcReport:
        """Delete blobs no version references that are older than ``grace_seconds``."""
        return collect_garbage(self.metadata, self.artifacts, grace_seconds=grace_seconds)


def _parent_key(name: str, parent: int | VersionKey | None) -> VersionKey | None:
    if parent is None:
        return None
    if isinstance(parent, tuple):
        if len(parent) != 2:
            raise InvalidRequest("parent must be a version or (model, version)", field="parent")
        return names.check_name(parent[0], "parent"), names.check_version(parent[1], "parent")
    return name, names.check_version(parent, "parent")


def _check_lineage(lineage: Lineage) -> Lineage:
    for field, value in (
        ("data_fingerprint", lineage.data_fingerprint),
        ("code_ref", lineage.code_ref),
        ("run_id", lineage.run_id),
    ):
        if value is not None:
            names.check_text(value, field, 256)
    rows = lineage.data_rows
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
        raise InvalidRequest(f"data_rows must be 0 or more, got {rows!r}", field="data_rows")
    return lineage
