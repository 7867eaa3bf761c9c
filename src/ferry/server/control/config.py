"""The control plane's knobs: upload size, inspection time, where uploads are staged."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ferry.config.paths import cache_dir
from ferry.config.settings import Settings
from ferry.registry.unpack import UnpackLimits

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
DEFAULT_INSPECT_TIMEOUT_SECONDS = 300.0
UPLOADS_DIR = "uploads"


@dataclass(frozen=True, slots=True)
class ControlConfig:
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES  # the whole multipart body; 413 beyond
    inspect_timeout_seconds: float = DEFAULT_INSPECT_TIMEOUT_SECONDS  # per inspector process
    max_inspectors: int = 0  # inspector processes at once per server process; 0: one per core
    work_dir: Path | None = None  # uploads and downloads are staged here; None: the home's cache
    unpack: UnpackLimits = UnpackLimits()  # what unpacking an uploaded archive may cost

    @classmethod
    def from_settings(cls, settings: Settings) -> ControlConfig:
        """``FERRY_MAX_UPLOAD_BYTES``, ``FERRY_INSPECT_TIMEOUT_SECONDS``, ``FERRY_UNPACK_*``;
        staging under ``FERRY_HOME``'s cache folder (a disk, not a RAM-backed /tmp)."""
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            inspect_timeout_seconds=settings.inspect_timeout_seconds,
            work_dir=cache_dir(settings.home.expanduser()) / UPLOADS_DIR,
            unpack=UnpackLimits(
                max_bytes=settings.unpack_max_bytes,
                max_file_bytes=settings.unpack_max_file_bytes,
                max_entries=settings.unpack_max_entries,
                max_seconds=settings.unpack_max_seconds,
                max_ratio=settings.unpack_max_ratio,
            ),
        )

    @property
    def inspector_slots(self) -> int:
        return self.max_inspectors or os.cpu_count() or 1

    def staging_root(self) -> Path:
        root = self.work_dir or Path(tempfile.gettempdir()) / "ferry-uploads"
        root.mkdir(parents=True, exist_ok=True)
        return root
