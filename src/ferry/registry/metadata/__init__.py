"""Metadata stores, chosen by database URL scheme."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from ferry.errors import ConfigError
from ferry.registry.metadata.base import MetadataStore, NewVersion

_STORES: dict[str, str] = {
    "sqlite": "ferry.registry.metadata.sql:SqlMetadataStore",
    "postgresql": "ferry.registry.metadata.sql:SqlMetadataStore",
    "postgresql+psycopg": "ferry.registry.metadata.sql:SqlMetadataStore",
    "postgres": "ferry.registry.metadata.sql:SqlMetadataStore",
}


def open_metadata_store(url: str) -> MetadataStore:
    """``sqlite:///path/ferry.db`` or ``postgresql://user@host/db``."""
    scheme = urlsplit(url).scheme
    if scheme not in _STORES:
        raise ConfigError(
            f"no metadata store for scheme {scheme!r}; known schemes: {sorted(_STORES)}",
            scheme=scheme,
        )
    module, _, name = _STORES[scheme].partition(":")
    store_cls = getattr(importlib.import_module(module), name)
    store: MetadataStore = store_cls.from_url(url)
    return store


__all__ = ["MetadataStore", "NewVersion", "open_metadata_store"]
