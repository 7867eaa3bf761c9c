"""Artifact stores: where version files live as content-addressed blobs, chosen by URL scheme."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ferry.errors import ConfigError
from ferry.registry.records import BlobInfo


class ArtifactStore(Protocol):
    """Blobs by key. ``put`` is atomic: a key holds the whole file or nothing."""

    @property
    def url(self) -> str: ...

    def put(self, key: str, source: Path, *, sha256: str | None = None) -> None:
        """Store ``source`` under ``key``, streaming; replaces an existing blob atomically.

        With ``sha256``, a store that can check the bytes it wrote against it does (BundleError
        on a mismatch, nothing stored); others keep it as the blob's metadata.
        """
        ...

    def get(self, key: str, target: Path) -> None:
        """Write the blob to ``target`` (streaming); BlobNotFound when it is not there."""
        ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> BlobInfo | None: ...

    def touch(self, key: str) -> bool:
        """Refresh the blob's modified time (so gc's grace period restarts); False if missing."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every complete blob whose key starts with ``prefix``."""
        ...

    def sweep_incomplete(self, older_than: datetime) -> int:
        """Remove unfinished writes (temp files, multipart uploads) started before a time."""
        ...

    def close(self) -> None: ...


_STORES: dict[str, str] = {
    "": "ferry.registry.artifacts.local:LocalStore",
    "file": "ferry.registry.artifacts.local:LocalStore",
    "s3": "ferry.registry.artifacts.s3:S3Store",
}


def open_artifact_store(url: str, *, endpoint_url: str | None = None) -> ArtifactStore:
    """``/some/folder``, ``file:///some/folder`` or ``s3://bucket/prefix``."""
    scheme = urlsplit(url).scheme
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme not in _STORES:
        raise ConfigError(
            f"no artifact store for {url!r}; known schemes: {sorted(s for s in _STORES if s)} "
            "or a plain folder path",
            url=url,
        )
    module, _, name = _STORES[scheme].partition(":")
    try:
        store_cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ConfigError(
            f"the {scheme}:// artifact store needs an extra: pip install 'ferry-ml[{scheme}]' "
            f"({exc})",
            url=url,
        ) from exc
    store: ArtifactStore = store_cls.from_url(url, endpoint_url=endpoint_url)
    return store


__all__ = ["ArtifactStore", "BlobInfo", "open_artifact_store"]
