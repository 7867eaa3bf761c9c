"""Python SDK over HTTP."""

from ferry.client.client import Client, ModelInfo, PredictResponse, ServedModel
from ferry.client.schemas import (
    Alias,
    AliasMove,
    AuditEntry,
    Lineage,
    LineageGraph,
    LineageNode,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionRef,
)
from ferry.errors import ConnectionFailed

__all__ = [
    "Alias",
    "AliasMove",
    "AuditEntry",
    "Client",
    "ConnectionFailed",
    "Lineage",
    "LineageGraph",
    "LineageNode",
    "ModelInfo",
    "ModelVersion",
    "Page",
    "PredictResponse",
    "RegisteredModel",
    "ServedModel",
    "VersionRef",
]
