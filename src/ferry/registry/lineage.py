"""A version's family: its parent chain (across models) and every version derived from it."""

from __future__ import annotations

from collections import deque

from ferry.errors import NotFound
from ferry.registry.metadata import MetadataStore
from ferry.registry.records import LineageGraph, LineageNode, VersionKey, VersionRecord

MAX_DEPTH = 1000


def _node(record: VersionRecord, depth: int) -> LineageNode:
    return LineageNode(
        model=record.model,
        version=record.version,
        sha256=record.sha256,
        parent=record.parent,
        lineage=record.lineage,
        created_at=record.created_at,
        created_by=record.created_by,
        depth=depth,
    )


def lineage_graph(metadata: MetadataStore, name: str, version: int) -> LineageGraph:
    root = metadata.get_version(name, version)
    seen: set[VersionKey] = {(root.model, root.version)}
    ancestors: list[LineageNode] = []
    parent = root.parent
    while parent is not None and parent not in seen and len(ancestors) < MAX_DEPTH:
        seen.add(parent)
        try:
            record = metadata.get_version(*parent)
        except NotFound:  # the parent's model was deleted: the chain stops here
            break
        ancestors.append(_node(record, len(ancestors) + 1))
        parent = record.parent
    descendants: list[LineageNode] = []
    queue: deque[tuple[VersionRecord, int]] = deque([(root, 0)])
    while queue:
        current, depth = queue.popleft()
        if depth >= MAX_DEPTH:
            continue
        for child in metadata.children(current.model, current.version):
            key = (child.model, child.version)
            if key in seen:
                continue
            seen.add(key)
            descendants.append(_node(child, depth + 1))
            queue.append((child, depth + 1))
    return LineageGraph(root=_node(root, 0), ancestors=ancestors, descendants=descendants)
