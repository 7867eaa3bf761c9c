"""The model registry: versions, aliases and lineage over a metadata store and an artifact store."""

from ferry.registry.artifacts import ArtifactStore, open_artifact_store
from ferry.registry.bundles import content_sha256, write_archive
from ferry.registry.fingerprint import fingerprint_data
from ferry.registry.metadata import MetadataStore, open_metadata_store
from ferry.registry.names import Ref, parse_ref
from ferry.registry.records import (
    AliasEvent,
    AliasRecord,
    AuditEvent,
    BlobInfo,
    GcReport,
    Lineage,
    LineageGraph,
    LineageNode,
    ModelRecord,
    Page,
    VersionKey,
    VersionRecord,
)
from ferry.registry.service import Registry
from ferry.registry.unpack import UnpackLimits, unpack_archive

__all__ = [
    "AliasEvent",
    "AliasRecord",
    "ArtifactStore",
    "AuditEvent",
    "BlobInfo",
    "GcReport",
    "Lineage",
    "LineageGraph",
    "LineageNode",
    "MetadataStore",
    "ModelRecord",
    "Page",
    "Ref",
    "Registry",
    "VersionKey",
    "VersionRecord",
    "content_sha256",
    "fingerprint_data",
    "open_artifact_store",
    "open_metadata_store",
    "parse_ref",
    "UnpackLimits",
    "unpack_archive",
    "write_archive",
]
