"""Bundle files as content-addressed blobs: ``sha256/ab/abcdef...`` in the artifact store."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from ferry.errors import BlobNotFound, BundleError, StorageError
from ferry.model.manifest import FileEntry
from ferry.registry.artifacts import ArtifactStore

log = logging.getLogger(__name__)

BLOB_PREFIX = "sha256/"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^sha256/([0-9a-f]{2})/([0-9a-f]{64})$")
_CHUNK = 1024 * 1024


def blob_key(sha256: str) -> str:
    if not _DIGEST.match(sha256):
        raise BundleError(f"{sha256!r} is not a sha256 hex digest", sha256=sha256)
    return f"{BLOB_PREFIX}{sha256[:2]}/{sha256}"


def blob_digest(key: str) -> str | None:
    """The sha256 a key stands for, or None for a key that is not a blob's."""
    match = _KEY.match(key)
    if match is None or match.group(2)[:2] != match.group(1):
        return None
    return match.group(2)


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def store_files(store: ArtifactStore, root: Path, files: Iterable[FileEntry]) -> None:
    """Put each distinct file of a verified bundle in the store, unless it is already there.

    A blob already present is touched instead, so gc's grace period starts again for it.
    Each upload is checked by size afterwards (the content was hashed before).
    """
    seen: set[str] = set()
    for entry in files:
        if entry.sha256 in seen:
            continue
        seen.add(entry.sha256)
        key = blob_key(entry.sha256)
        if store.touch(key):
            continue
        store.put(key, root / entry.path, sha256=entry.sha256)
        info = store.stat(key)
        if info is None or info.size != entry.size:
            store.delete(key)
            raise StorageError(
                f"{entry.path} did not arrive whole in {store.url} "
                f"({info.size if info else 'no'} bytes of {entry.size})",
                path=entry.path,
            )


def ensure_stored(store: ArtifactStore, root: Path, files: Iterable[FileEntry]) -> int:
    """After commit: put back any blob removed meanwhile (a gc racing the commit). Returns how
    many were repaired."""
    repaired = 0
    for entry in {f.sha256: f for f in files}.values():
        key = blob_key(entry.sha256)
        if not store.exists(key):
            log.warning(
                "blob vanished before its version committed; storing it again", extra={"key": key}
            )
            store.put(key, root / entry.path, sha256=entry.sha256)
            repaired += 1
    return repaired


def fetch_files(store: ArtifactStore, files: Iterable[FileEntry], dest: Path) -> None:
    """Download each file into ``dest`` and check its sha256 and size.

    A blob missing or changed is the storage's fault, not the caller's: StorageError (a
    500 with the fixed message; this text, which names files and digests, goes to the log)."""
    for entry in files:
        target = dest.joinpath(*entry.path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.get(blob_key(entry.sha256), target)
        except BlobNotFound as exc:
            raise BlobNotFound(
                f"{entry.path} ({entry.sha256[:12]}) is missing from the artifact store",
                path=entry.path,
                sha256=entry.sha256,
            ) from exc
        digest, size = hash_file(target)
        if digest != entry.sha256 or size != entry.size:
            raise StorageError(
                f"{entry.path} from the artifact store does not match its sha256 "
                f"(corrupt blob {entry.sha256[:12]})",
                path=entry.path,
                sha256=entry.sha256,
            )
