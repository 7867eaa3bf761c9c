"""Sweeping the artifact store: blobs no version points at, and unfinished writes.

A blob is deleted only when it is unreferenced *and* its modified time is older than the grace
period, so the blobs of a registration still in flight (stored or touched, not yet committed)
survive. Each candidate is checked again just before it goes, against a fresh reference list
and a fresh modified time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from ferry.registry.artifacts import ArtifactStore
from ferry.registry.blobs import BLOB_PREFIX, blob_digest, blob_key
from ferry.registry.metadata import MetadataStore
from ferry.registry.records import BlobInfo, GcReport

log = logging.getLogger(__name__)


def collect_garbage(
    metadata: MetadataStore, artifacts: ArtifactStore, *, grace_seconds: float = 3600.0
) -> GcReport:
    cutoff = datetime.now(UTC) - timedelta(seconds=max(0.0, grace_seconds))
    incomplete = artifacts.sweep_incomplete(cutoff)
    listed = list(artifacts.list(BLOB_PREFIX))
    referenced = metadata.referenced_blobs()  # read after listing: newer blobs are kept anyway
    present = {blob_digest(info.key) for info in listed}
    candidates: list[BlobInfo] = []
    kept_recent = 0
    for info in listed:
        if blob_digest(info.key) in referenced:
            continue
        if info.modified_at >= cutoff:
            kept_recent += 1
        else:
            candidates.append(info)
    deleted: list[str] = []
    freed = 0
    if candidates:
        referenced = metadata.referenced_blobs()
        for info in candidates:
            if blob_digest(info.key) in referenced:
                continue
            fresh = artifacts.stat(info.key)
            if fresh is None:
                continue
            if fresh.modified_at >= cutoff:
                kept_recent += 1
                continue
            artifacts.delete(info.key)
            deleted.append(info.key)
            freed += info.size
    missing = sorted(
        blob_key(d) for d in referenced if d not in present and not artifacts.exists(blob_key(d))
    )
    if missing:
        log.error("referenced blobs missing from the artifact store", extra={"missing": missing})
    report = GcReport(
        scanned=len(listed),
        referenced=len(referenced),
        deleted=deleted,
        bytes_freed=freed,
        kept_recent=kept_recent,
        incomplete_removed=incomplete,
        missing=missing,
    )
    log.info(
        "gc finished",
        extra={"deleted": len(deleted), "bytes_freed": freed, "incomplete": incomplete},
    )
    return report
