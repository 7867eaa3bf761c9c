"""Control-plane bodies and answers (pydantic), and their conversion from registry records."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ferry.model.manifest import FileEntry
from ferry.model.signature import Signature
from ferry.registry import (
    AliasEvent,
    AliasRecord,
    AuditEvent,
    Lineage,
    LineageGraph,
    LineageNode,
    ModelRecord,
    Page,
    VersionKey,
    VersionRecord,
)

T = TypeVar("T")
ParamValue = str | int | float | bool


class Body(BaseModel):
    """A request body: unknown fields are an error, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="Stable error code, e.g. `model_not_found`, `invalid_name`.")
    message: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class ErrorAnswer(BaseModel):
    error: ErrorDetail


# --- answers ------------------------------------------------------------------------------------
class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Items matching the filters, over all pages.")
    limit: int
    offset: int


class ModelOut(BaseModel):
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = Field(description="Alias name -> version number.")


class VersionRef(BaseModel):
    model: str
    version: int


class LineageOut(BaseModel):
    data_fingerprint: str | None = Field(
        default=None, description="sha256 of the training data file."
    )
    data_rows: int | None = None
    code_ref: str | None = Field(default=None, description="e.g. a git commit.")
    run_id: str | None = Field(default=None, description="The training run's id.")


class VersionOut(BaseModel):
    model: str
    version: int
    ref: str = Field(description="`model/version`.")
    sha256: str = Field(description="Content digest of the bundle.")
    flavor: str
    signature: Signature
    size: int = Field(description="Bytes, all files together.")
    requirements: list[str]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    description: str
    created_at: datetime
    created_by: str
    parent: VersionRef | None
    lineage: LineageOut
    files: list[FileEntry]
    aliases: list[str] = Field(description="The model's aliases pointing at this version.")


class UploadOut(VersionOut):
    created: bool = Field(description="False when identical content was already registered.")
    alias: str | None = Field(default=None, description="The alias set by this upload, if any.")


class AliasOut(BaseModel):
    model: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str


class AliasEventOut(BaseModel):
    model: str
    alias: str
    old_version: int | None = Field(description="None when the alias was created.")
    new_version: int | None = Field(description="None when the alias was deleted.")
    at: datetime
    actor: str


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str = Field(description="e.g. `version.create`, `alias.set`.")
    target: str = Field(description="e.g. `iris`, `iris/3`, `iris@production`.")
    details: dict[str, JsonValue]


class LineageNodeOut(BaseModel):
    model: str
    version: int
    sha256: str
    parent: VersionRef | None
    lineage: LineageOut
    created_at: datetime
    created_by: str
    depth: int = Field(description="0 for the version asked about, 1 for parent/children, ...")


class LineageGraphOut(BaseModel):
    root: LineageNodeOut
    ancestors: list[LineageNodeOut] = Field(description="Parent first, then its parent, ...")
    descendants: list[LineageNodeOut] = Field(description="Breadth first: children, ...")


class ModelPage(PageOut[ModelOut]):
    pass


class VersionPage(PageOut[VersionOut]):
    pass


class AliasPage(PageOut[AliasOut]):
    pass


class AliasHistoryPage(PageOut[AliasEventOut]):
    pass


class AuditPage(PageOut[AuditEventOut]):
    pass


# --- bodies -------------------------------------------------------------------------------------
class CreateModelIn(Body):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class UpdateModelIn(Body):
    description: str | None = None
    tags: dict[str, str] | None = Field(default=None, description="Replaces the model's tags.")


class UpdateVersionIn(Body):
    tags: dict[str, str] = Field(description="Tags to add or change.")
    replace: bool = Field(
        default=False, description="True: the version's tags become exactly `tags`."
    )


class MetricsIn(Body):
    metrics: dict[str, float]


class AliasIn(Body):
    version: int


class LineageIn(Body):
    data_fingerprint: str | None = None
    data_rows: int | None = None
    code_ref: str | None = None
    run_id: str | None = None


class UploadMetadata(Body):
    """The ``metadata`` part of an upload (JSON)."""

    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    parent: int | VersionRef | None = Field(
        default=None, description="A version of this model, or `{model, version}` of another one."
    )
    lineage: LineageIn | None = None
    alias: str | None = Field(
        default=None, description="Point this alias at the version once stored."
    )
    entrypoint: str | None = Field(
        default=None, description="Custom models: `predictor.py:ClassName`, among the `code` parts."
    )
    flavor: str | None = Field(default=None, description="Force a flavor instead of detecting it.")
    create_model: bool = Field(default=True, description="False: 404 unless the model exists.")

    def parent_key(self) -> int | VersionKey | None:
        if isinstance(self.parent, VersionRef):
            return (self.parent.model, self.parent.version)
        return self.parent

    def lineage_record(self) -> Lineage:
        given = self.lineage or LineageIn()
        return Lineage(given.data_fingerprint, given.data_rows, given.code_ref, given.run_id)

    def param_strings(self) -> dict[str, str]:
        return {key: _param_text(value) for key, value in self.params.items()}


def _param_text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --- records -> answers -------------------------------------------------------------------------
def model_out(record: ModelRecord) -> ModelOut:
    return ModelOut(
        name=record.name,
        description=record.description,
        tags=record.tags,
        created_at=record.created_at,
        updated_at=record.updated_at,
        latest_version=record.latest_version,
        aliases=record.aliases,
    )


def _ref(key: VersionKey | None) -> VersionRef | None:
    return None if key is None else VersionRef(model=key[0], version=key[1])


def lineage_out(lineage: Lineage) -> LineageOut:
    return LineageOut(
        data_fingerprint=lineage.data_fingerprint,
        data_rows=lineage.data_rows,
        code_ref=lineage.code_ref,
        run_id=lineage.run_id,
    )


def version_fields(record: VersionRecord, aliases: dict[str, int]) -> dict[str, object]:
    """The fields of ``VersionOut`` (and ``UploadOut``) for one version."""
    return {
        "model": record.model,
        "version": record.version,
        "ref": record.ref,
        "sha256": record.sha256,
        "flavor": record.flavor,
        "signature": record.signature,
        "size": record.size,
        "requirements": record.requirements,
        "metrics": record.metrics,
        "params": record.params,
        "tags": record.tags,
        "description": record.description,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "parent": _ref(record.parent),
        "lineage": lineage_out(record.lineage),
        "files": record.files,
        "aliases": sorted(a for a, v in aliases.items() if v == record.version),
    }


def version_out(record: VersionRecord, aliases: dict[str, int]) -> VersionOut:
    return VersionOut.model_validate(version_fields(record, aliases))


def alias_out(record: AliasRecord) -> AliasOut:
    return AliasOut(
        model=record.model,
        alias=record.alias,
        version=record.version,
        updated_at=record.updated_at,
        updated_by=record.updated_by,
    )


def alias_event_out(event: AliasEvent) -> AliasEventOut:
    return AliasEventOut(
        model=event.model,
        alias=event.alias,
        old_version=event.old_version,
        new_version=event.new_version,
        at=event.at,
        actor=event.actor,
    )


def audit_event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(
        {
            "id": event.id,
            "at": event.at,
            "actor": event.actor,
            "action": event.action,
            "target": event.target,
            "details": event.details,
        }
    )


def lineage_node_out(node: LineageNode) -> LineageNodeOut:
    return LineageNodeOut(
        model=node.model,
        version=node.version,
        sha256=node.sha256,
        parent=_ref(node.parent),
        lineage=lineage_out(node.lineage),
        created_at=node.created_at,
        created_by=node.created_by,
        depth=node.depth,
    )


def lineage_graph_out(graph: LineageGraph) -> LineageGraphOut:
    return LineageGraphOut(
        root=lineage_node_out(graph.root),
        ancestors=[lineage_node_out(n) for n in graph.ancestors],
        descendants=[lineage_node_out(n) for n in graph.descendants],
    )


def page_fields(page: Page[T]) -> dict[str, int]:
    return {"total": page.total, "limit": page.limit, "offset": page.offset}
