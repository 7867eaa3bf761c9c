"""The bundle manifest (``ferry.yaml``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from ferry.errors import BundleError
from ferry.model.signature import Signature

MANIFEST_FILE = "ferry.yaml"
FORMAT_VERSION = 1


class FileEntry(BaseModel):
    path: str  # relative to the bundle root, with forward slashes
    sha256: str
    size: int


class ServingOptions(BaseModel):
    """Per-model serving settings; unset fields fall back to the server's FERRY_* settings."""

    batching: bool | None = None
    max_batch_size: int | None = Field(default=None, ge=1)
    max_wait_ms: float | None = Field(default=None, ge=0.0, le=1000.0)


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    name: str
    version: str | None = None
    flavor: str
    artifact: str  # the model file/folder, relative to the bundle root
    flavor_options: dict[str, str] = Field(default_factory=dict)
    signature: Signature
    files: list[FileEntry] = Field(default_factory=list)
    created_at: datetime
    python_version: str
    libraries: dict[str, str] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)
    example: str | None = None  # relative path of the input example (JSON, split orientation)
    expected_output: str | None = None  # relative path of the example's expected output
    description: str = ""
    serving: ServingOptions = Field(default_factory=ServingOptions)

    def dump(self, path: Path) -> None:
        data = self.model_dump(mode="json", exclude_none=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{bundle_dir} is not a Ferry bundle: no {MANIFEST_FILE}") from exc
    except yaml.YAMLError as exc:
        raise BundleError(f"{path} is not valid YAML: {exc}", path=str(path)) from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{path} is not a valid manifest: {exc}", path=str(path)) from exc
    if manifest.format_version > FORMAT_VERSION:
        raise BundleError(
            f"{path} has format_version {manifest.format_version}; this Ferry reads up to "
            f"{FORMAT_VERSION}: upgrade ferry-ml",
            path=str(path),
        )
    return manifest
