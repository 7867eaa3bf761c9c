"""A version's reference profile, made when it is first needed for a version that has none
(registered with ``Registry.register`` directly, or before profiles existed): from the input
example stored with it, fetched alone from the artifact store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ferry.errors import ProfileNotFound
from ferry.monitoring.profile import ReferenceProfile, kinds_from_signature, profile_frame
from ferry.monitoring.storage import MonitoringStore

if TYPE_CHECKING:
    from ferry.registry import Registry


def reference_profile(
    registry: Registry, store: MonitoringStore, model: str, version: int
) -> ReferenceProfile:
    try:
        return store.get_profile(model, version)
    except ProfileNotFound:
        profile = example_profile(registry, model, version)
        if profile is None:
            raise
        store.save_profile(model, version, profile)
        return profile


def example_profile(registry: Registry, model: str, version: int) -> ReferenceProfile | None:
    """The profile of the version's stored input example (None without one)."""
    import orjson
    import pandas as pd

    from ferry.registry.blobs import fetch_files

    record = registry.get_version(model, version)
    kinds = kinds_from_signature(record.signature)
    example = record.manifest.example
    entry = next((f for f in record.files if f.path == example), None)
    if not kinds or entry is None:
        return None
    with tempfile.TemporaryDirectory(prefix="ferry-profile-") as scratch:
        fetch_files(registry.artifacts, [entry], Path(scratch))
        split = orjson.loads((Path(scratch) / entry.path).read_bytes())
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    return profile_frame(frame, source="example", kinds=kinds)
