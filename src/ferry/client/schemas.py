"""Typed answers of a Ferry server's registry API (``/api/v1``), as the client returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ferry.model.manifest import FileEntry
from ferry.model.signature import Signature

T = TypeVar("T")


class Answer(BaseModel):
    """Frozen, and tolerant of fields a newer server adds."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Page(Answer, Generic[T]):
    """One page of a list: ``items`` plus the ``total`` matching the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


class RegisteredModel(Answer):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)


class VersionRef(Answer):
    model: str
    version: int


class Lineage(Answer):
    data_fingerprint: str | None = None
    data_rows: int | None = None
    code_ref: str | None = None
    run_id: str | None = None


class ModelVersion(Answer):
    model: str
    version: int
    ref: str
    sha256: str
    flavor: str
    signature: Signature
    size: int
    requirements: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    created_at: datetime
    created_by: str = ""
    parent: VersionRef | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    files: list[FileEntry] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    created: bool | None = None  # uploads only: False when the content was already registered


class Alias(Answer):
    model: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str = ""


class AliasMove(Answer):
    model: str
    alias: str
    old_version: int | None = None
    new_version: int | None = None
    at: datetime
    actor: str = ""


class AuditEntry(Answer):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class LineageNode(Answer):
    model: str
    version: int
    sha256: str
    parent: VersionRef | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    created_at: datetime
    created_by: str = ""
    depth: int


class LineageGraph(Answer):
    root: LineageNode
    ancestors: list[LineageNode] = Field(default_factory=list)
    descendants: list[LineageNode] = Field(default_factory=list)
