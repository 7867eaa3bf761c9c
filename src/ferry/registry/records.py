"""What the registry hands out: frozen records of models, versions, aliases and audit events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from ferry.model.manifest import FileEntry, Manifest
from ferry.model.signature import Signature

T = TypeVar("T")

VersionKey = tuple[str, int]  # (model name, version number)


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from, besides its parent version."""

    data_fingerprint: str | None = None  # sha256 of the training data file (fingerprint_data)
    data_rows: int | None = None
    code_ref: str | None = None  # e.g. a git commit
    run_id: str | None = None  # a training run's id


@dataclass(frozen=True, slots=True)
class ModelRecord:
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    aliases: dict[str, int]


@dataclass(frozen=True, slots=True)
class VersionRecord:
    model: str
    version: int
    sha256: str  # content digest of the bundle (see bundles.content_sha256)
    flavor: str
    signature: Signature
    size: int  # bytes, all files together
    requirements: list[str]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    description: str
    created_at: datetime
    created_by: str
    parent: VersionKey | None
    lineage: Lineage
    files: list[FileEntry]
    manifest: Manifest

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class AliasRecord:
    model: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: ``old_version`` is None when it was created, ``new_version`` when
    it was deleted."""

    model: str
    alias: str
    old_version: int | None
    new_version: int | None
    at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str  # e.g. "version.create", "alias.set"
    target: str  # e.g. "iris", "iris/3", "iris@production"
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class LineageNode:
    model: str
    version: int
    sha256: str
    parent: VersionKey | None
    lineage: Lineage
    created_at: datetime
    created_by: str
    depth: int  # 0 for the version asked about, 1 for its parent or children, ...


@dataclass(frozen=True, slots=True)
class LineageGraph:
    root: LineageNode
    ancestors: list[LineageNode]  # parent first, then the parent's parent, ...
    descendants: list[LineageNode]  # breadth first: children, grandchildren, ...


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class GcReport:
    scanned: int  # blobs listed in the artifact store
    referenced: int  # blob digests some version points at
    deleted: list[str] = field(default_factory=list)  # keys removed
    bytes_freed: int = 0
    kept_recent: int = 0  # unreferenced but younger than the grace period (maybe in flight)
    incomplete_removed: int = 0  # temp files / unfinished multipart uploads swept
    missing: list[str] = field(default_factory=list)  # referenced digests with no blob (!)
