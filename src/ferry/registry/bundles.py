"""Bundles in and out of the registry: content digest, path checks, materialize, archives."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import uuid
from pathlib import Path

from ferry.errors import BundleError, StorageError
from ferry.model.manifest import MANIFEST_FILE, Manifest
from ferry.registry.artifacts import ArtifactStore
from ferry.registry.blobs import fetch_files
from ferry.registry.records import VersionRecord

MAX_PATH = 1024


def content_sha256(manifest: Manifest) -> str:
    """The version's identity: its files' digests plus what decides how it is served.

    Name, description, creation time and the Python/library versions it was saved with are left
    out, so saving the same model again and re-registering it finds the existing version.
    """
    identity = {
        "format_version": manifest.format_version,
        "files": sorted([f.path, f.sha256, f.size] for f in manifest.files),
        "flavor": manifest.flavor,
        "artifact": manifest.artifact,
        "flavor_options": manifest.flavor_options,
        "signature": manifest.signature.model_dump(mode="json"),
        "requirements": manifest.requirements,
        "example": manifest.example,
        "expected_output": manifest.expected_output,
        "serving": manifest.serving.model_dump(mode="json"),
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_paths(manifest: Manifest) -> None:
    """Every file path is relative and stays inside the bundle; the artifact is among them."""
    seen: set[str] = set()
    for entry in manifest.files:
        check_relative_path(entry.path)
        if entry.path in seen:
            raise BundleError(f"the manifest lists {entry.path!r} twice", path=entry.path)
        seen.add(entry.path)
    if not manifest.files:
        raise BundleError("the manifest lists no files")
    artifact = manifest.artifact.rstrip("/")
    if artifact not in seen and not any(p.startswith(f"{artifact}/") for p in seen):
        raise BundleError(
            f"the manifest's artifact {manifest.artifact!r} is not among its files",
            path=manifest.artifact,
        )
    for field, value in (
        ("example", manifest.example),
        ("expected_output", manifest.expected_output),
    ):
        if value is not None and value not in seen:
            raise BundleError(
                f"the manifest's {field} {value!r} is not among its files", path=value
            )


def check_relative_path(path: str) -> None:
    """A bundle file path: relative, inside the bundle, not the manifest's own name."""
    if (
        not path
        or len(path) > MAX_PATH
        or "\\" in path
        or "\x00" in path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in path.split("/"))
        or path == MANIFEST_FILE
    ):
        raise BundleError(f"bundle file path {path!r} is not a safe relative path", path=path)


def materialize(
    store: ArtifactStore, record: VersionRecord, dest: Path, *, overwrite: bool = False
) -> Path:
    """Write the version as a bundle folder at ``dest``: all files verified, or nothing."""
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest} already exists", path=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = sibling(dest, "tmp")
    try:
        staging.mkdir()
        fetch_files(store, record.files, staging)
        manifest = record.manifest.model_copy(
            update={"name": record.model, "version": str(record.version), "files": record.files}
        )
        manifest.dump(staging / MANIFEST_FILE)
        _move_into_place(staging, dest, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def checkout(store: ArtifactStore, record: VersionRecord, cache_root: Path) -> Path:
    """The version's bundle under ``cache_root/<model>/<version>``, materialized once.

    Safe for several processes at once: the first to finish wins, the others use its folder.
    """
    dest = cache_root / record.model / str(record.version)
    if (dest / MANIFEST_FILE).is_file():
        return dest
    try:
        return materialize(store, record, dest)
    except (BundleError, StorageError, OSError):
        if (dest / MANIFEST_FILE).is_file():  # another process won the race
            return dest
        raise


def write_archive(bundle_dir: Path, dest_file: Path) -> Path:
    """A ``.tar.gz`` of the bundle folder, entries relative to it (``ferry.yaml``, ``model/``)."""
    dest_file.parent.mkdir(parents=True, exist_ok=True)
    temp = sibling(dest_file, "tmp")
    try:
        with tarfile.open(temp, "w:gz") as archive:
            for path in sorted(bundle_dir.rglob("*")):
                if path.is_file():
                    archive.add(path, arcname=path.relative_to(bundle_dir).as_posix())
        os.replace(temp, dest_file)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return dest_file


def sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:12]}"


def _move_into_place(staging: Path, dest: Path, *, overwrite: bool) -> None:
    if not dest.exists():
        os.replace(staging, dest)
        return
    if not overwrite:
        raise BundleError(f"{dest} already exists", path=str(dest))
    trash = sibling(dest, "old")
    os.replace(dest, trash)
    os.replace(staging, dest)
    shutil.rmtree(trash, ignore_errors=True)
