"""ferry-ml itself as a wheel, for images: there is no PyPI release to install it from.

The wheel is written from the running package's own files (a checkout's ``src/ferry`` or an
installed copy) and its installed metadata, with fixed timestamps and sorted entries, so the
same code always gives the same bytes and an image build context stays reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ConfigError

DISTRIBUTION = "ferry-ml"
_WHEEL_NAME = "ferry_ml"
# 1980-01-01, the earliest time a zip entry can hold: no build time leaks into the bytes
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True, slots=True)
class Wheel:
    filename: str
    data: bytes
    requires: tuple[str, ...]  # Requires-Dist lines, extras markers included


def package_dir() -> Path:
    import ferry

    return Path(ferry.__file__).resolve().parent


def ferry_wheel() -> Wheel:
    """The wheel of the running ferry-ml (its code as it is on disk now)."""
    from ferry import __version__

    try:
        metadata = importlib.metadata.metadata(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            "ferry-ml has no installed metadata (run from a bare source tree?); install it "
            "with `pip install -e .` so its dependencies are known",
        ) from exc
    requires = tuple(metadata.get_all("Requires-Dist") or ())
    summary = (metadata.get_all("Summary") or [""])[0]
    dist_info = f"{_WHEEL_NAME}-{__version__}.dist-info"
    entries: list[tuple[str, bytes]] = []
    root = package_dir()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if path.suffix in _SKIPPED_SUFFIXES:
            continue
        entries.append((f"ferry/{path.relative_to(root).as_posix()}", path.read_bytes()))
    meta_lines = [
        "Metadata-Version: 2.1",
        f"Name: {DISTRIBUTION}",
        f"Version: {__version__}",
        f"Summary: {summary}",
        "Requires-Python: >=3.11",
        *(f"Requires-Dist: {line}" for line in requires),
    ]
    entries.append((f"{dist_info}/METADATA", ("\n".join(meta_lines) + "\n").encode()))
    wheel_meta = "Wheel-Version: 1.0\nGenerator: ferry\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries.append((f"{dist_info}/WHEEL", wheel_meta.encode()))
    entry_points = "[console_scripts]\nferry = ferry.cli.main:main\n"
    entries.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in entries]
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    return Wheel(
        filename=f"{_WHEEL_NAME}-{__version__}-py3-none-any.whl",
        data=_zip(entries),
        requires=requires,
    )


def _digest(data: bytes) -> str:
    raw = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
