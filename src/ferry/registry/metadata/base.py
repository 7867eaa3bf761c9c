"""The metadata store protocol: models, versions, aliases, lineage links and the audit log.

Implementations validate nothing the Registry already checked (names, tags, metrics); they
enforce what only the database can: uniqueness, gap-free numbering under concurrency, and
that every write and its audit row commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ferry.model.manifest import FileEntry, Manifest
from ferry.model.signature import Signature
from ferry.registry.filters import MetricFilter, TagFilter
from ferry.registry.records import (
    AliasEvent,
    AliasRecord,
    AuditEvent,
    Lineage,
    ModelRecord,
    Page,
    VersionKey,
    VersionRecord,
)


@dataclass(frozen=True, slots=True)
class NewVersion:
    """Everything a version row holds except its number, which the store allocates."""

    model: str
    sha256: str
    flavor: str
    signature: Signature
    size: int
    requirements: list[str]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    description: str
    parent: VersionKey | None
    lineage: Lineage
    files: list[FileEntry]
    manifest: Manifest
    audit: dict[str, object] = field(default_factory=dict)  # more for the version.create row


class MetadataStore(Protocol):
    @property
    def url(self) -> str:
        """The database URL without its password."""
        ...

    def migrate(self) -> str:
        """Bring the schema to the newest revision (idempotent); returns that revision."""
        ...

    # models
    def create_model(
        self, name: str, *, description: str, tags: dict[str, str], actor: str
    ) -> ModelRecord: ...

    def get_model(self, name: str) -> ModelRecord: ...

    def list_models(
        self, *, tag: TagFilter | None, name_prefix: str | None, limit: int, offset: int
    ) -> Page[ModelRecord]: ...

    def update_model(
        self, name: str, *, description: str | None, tags: dict[str, str] | None, actor: str
    ) -> ModelRecord: ...

    def delete_model(self, name: str, *, actor: str) -> None: ...

    # versions
    def add_version(
        self, new: NewVersion, *, actor: str, create_model: bool
    ) -> tuple[VersionRecord, bool]:
        """Insert the version with the next number, or return the one with the same sha256.

        Returns the record and whether it was created. One transaction: the model row (created
        here when ``create_model``), the version, its files/tags/metrics and audit rows.
        """
        ...

    def find_version(self, name: str, sha256: str) -> VersionRecord | None: ...

    def get_version(self, name: str, version: int) -> VersionRecord: ...

    def latest_version(self, name: str) -> VersionRecord: ...

    def list_versions(
        self,
        name: str,
        *,
        tag: TagFilter | None,
        metric: MetricFilter | None,
        limit: int,
        offset: int,
    ) -> Page[VersionRecord]: ...

    def children(self, name: str, version: int) -> list[VersionRecord]: ...

    def set_version_tags(
        self, name: str, version: int, tags: dict[str, str], *, replace: bool, actor: str
    ) -> VersionRecord: ...

    def log_metrics(
        self, name: str, version: int, metrics: dict[str, float], *, actor: str
    ) -> VersionRecord: ...

    # aliases
    def set_alias(self, name: str, alias: str, version: int, *, actor: str) -> AliasRecord: ...

    def get_alias(self, name: str, alias: str) -> AliasRecord: ...

    def delete_alias(self, name: str, alias: str, *, actor: str) -> None: ...

    def list_aliases(self, name: str) -> list[AliasRecord]: ...

    def alias_history(self, name: str, alias: str | None) -> list[AliasEvent]: ...

    # audit, gc, health
    def audit(self, *, limit: int, offset: int) -> list[AuditEvent]: ...

    def referenced_blobs(self) -> set[str]:
        """The sha256 of every file some version points at."""
        ...

    def row_counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...
