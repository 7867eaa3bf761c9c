"""``ferry export``: a version's image as an OCI archive, optionally kept in the artifact
store too (a backup, or the way to carry it to another site through S3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferry.errors import BuildFailed
from ferry.packaging.builders import choose_builder
from ferry.packaging.context import default_tag
from ferry.packaging.images import export_image
from ferry.packaging.process import LogSink, discard
from ferry.registry.records import VersionRecord
from ferry.registry.service import Registry

STORE_PREFIX = "images"


@dataclass(frozen=True, slots=True)
class Exported:
    image: str
    path: Path
    size: int
    store_key: str | None


def store_key(record: VersionRecord) -> str:
    return f"{STORE_PREFIX}/{record.model}/{record.version}/{record.sha256[:16]}.oci.tar"


def export_version(
    registry: Registry,
    record: VersionRecord,
    dest: Path,
    *,
    builder: str | None = None,
    tag: str | None = None,
    to_store: bool = False,
    log: LogSink = discard,
) -> Exported:
    """Save the version's built image (``ferry build`` first) to ``dest``."""
    chosen = choose_builder(builder)
    image = tag or default_tag(record.model, record.version)
    if not chosen.image_exists(image):
        raise BuildFailed(
            f"no image {image} here; build it first: ferry build {record.model}/{record.version}",
            image=image,
        )
    path = export_image(chosen, image, Path(dest), log)
    key = None
    if to_store:
        key = store_key(record)
        registry.artifacts.put(key, path)
        log(f"stored {key} in {registry.artifacts.url}")
    return Exported(image=image, path=path, size=path.stat().st_size, store_key=key)
