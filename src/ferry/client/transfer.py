"""Uploads and downloads: what a register call sends, archives, and byte-level progress."""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from ferry.errors import InvalidRequest

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[int, int | None], None]  # (bytes done, bytes in all or None)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MANIFEST_FILE = "ferry.yaml"
CHUNK = 1024 * 1024
ARCHIVE_LEVEL = 1  # model files barely compress; fast gzip keeps large uploads quick


class Meter:
    """Adds up bytes moved across several files and reports the running total."""

    def __init__(self, total: int | None, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def add(self, count: int) -> None:
        self.done += count
        if self.progress is not None and count:
            self.progress(self.done, self.total)


class MeteredFile:
    """A binary file that reports every read to a ``Meter`` (httpx streams it in chunks)."""

    def __init__(self, handle: IO[bytes], meter: Meter) -> None:
        self._handle = handle
        self._meter = meter

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._meter.add(len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        before = self._handle.tell()
        after = self._handle.seek(offset, whence)
        if after < before:
            self._meter.add(after - before)  # a rewind (httpx seeks to 0 before sending)
        return after

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()


@dataclass(slots=True)
class UploadParts:
    """The multipart fields of ``POST /api/v1/models/{name}/versions``, as local files."""

    files: list[tuple[str, Path, str]] = field(default_factory=list)  # (part, file, send name)
    metadata: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # plain form fields (trust=true)

    def add(self, part: str, path: Path, name: str | None = None) -> None:
        self.files.append((part, path, name or path.name))

    @contextmanager
    def opened(self, progress: Progress | None) -> Iterator[list[tuple[str, Any]]]:
        """httpx ``files=``: every file opened and metered, the metadata as a JSON part."""
        total = sum(path.stat().st_size for _, path, _ in self.files)
        meter = Meter(total, progress)
        with ExitStack() as stack:
            fields: list[tuple[str, Any]] = [
                (part, (name, MeteredFile(stack.enter_context(path.open("rb")), meter)))
                for part, path, name in self.files
            ]
            if self.metadata:
                fields.append(
                    ("metadata", ("metadata.json", orjson.dumps(self.metadata), "application/json"))
                )
            fields.extend((name, (None, value.encode())) for name, value in self.fields.items())
            yield fields


def plan_upload(
    path: str | Path,
    work: Path,
    *,
    requirements: str | Path | None,
    example: str | Path | pd.DataFrame | None,
    code: Sequence[str | Path],
) -> tuple[UploadParts, str | None]:
    """The parts for ``path`` and the custom entrypoint, if any. ``work`` holds archives.

    A bundle folder (with ferry.yaml) or a ``.tar.gz`` is sent as ``bundle``; another folder
    (an MLflow model) is archived and sent as ``model``; ``file.py:Class`` is sent as ``code``
    with an entrypoint; any other file as ``model``.
    """
    parts = UploadParts()
    entrypoint = None
    text = str(path)
    if ".py:" in text:
        file_text, _, class_name = text.rpartition(":")
        file = Path(file_text)
        _must_exist(file)
        parts.add("code", file)
        entrypoint = f"{file.name}:{class_name}"
    else:
        source = Path(path)
        _must_exist(source)
        if source.is_dir():
            archive = pack_folder(source, work / f"{source.name}.tar.gz")
            kind = "bundle" if (source / MANIFEST_FILE).is_file() else "model"
            parts.add(kind, archive)
        elif source.name.lower().endswith(ARCHIVE_SUFFIXES):
            parts.add("bundle", source)
        else:
            parts.add("model", source)
    for extra in code:
        _add_code(parts, Path(extra))
    if requirements is not None:
        _must_exist(Path(requirements))
        parts.add("requirements", Path(requirements), "requirements.txt")
    if example is not None:
        parts.add("example", *_example_file(example, work))
    return parts, entrypoint


def _add_code(parts: UploadParts, path: Path) -> None:
    _must_exist(path)
    if path.is_file():
        parts.add("code", path)
        return
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        relative = file.relative_to(path.parent).as_posix()
        parts.add("code", file, relative)


def _example_file(example: str | Path | pd.DataFrame, work: Path) -> tuple[Path, str]:
    if isinstance(example, str | Path):
        path = Path(example)
        _must_exist(path)
        return path, path.name
    from ferry.model.example import frame_to_split

    target = work / "example.json"
    target.write_bytes(orjson.dumps(frame_to_split(example), option=orjson.OPT_SERIALIZE_NUMPY))
    return target, target.name


def _must_exist(path: Path) -> None:
    if not path.exists():
        raise InvalidRequest(f"{path} does not exist", path=str(path))


def pack_folder(folder: Path, dest: Path) -> Path:
    """A ``.tar.gz`` of the folder's files, entries relative to it."""
    with tarfile.open(dest, "w:gz", compresslevel=ARCHIVE_LEVEL) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.add(path, arcname=path.relative_to(folder).as_posix())
    return dest


def write_stream(chunks: Iterator[bytes], dest: Path, meter: Meter) -> Path:
    with dest.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
            meter.add(len(chunk))
    return dest


def unpack_bundle(archive: Path, dest: Path, *, overwrite: bool) -> Path:
    """Unpack a downloaded bundle into ``dest`` and verify every file's sha256."""
    from ferry.model.bundle import verify_files
    from ferry.model.manifest import read_manifest
    from ferry.registry.unpack import unpack_archive

    if dest.exists():
        if not overwrite:
            raise InvalidRequest(f"{dest} already exists; pass overwrite=True", path=str(dest))
        staged = unpack_archive(archive, dest.with_name(f".{dest.name}.pull"))
        shutil.rmtree(dest)
        os.replace(staged, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        unpack_archive(archive, dest)
    verify_files(dest, read_manifest(dest).files)
    return dest


def lineage_metadata(
    data: str | Path | None, code_ref: str | None, run_id: str | None
) -> Mapping[str, object]:
    """The ``lineage`` metadata: the training data's fingerprint (computed here), code, run."""
    lineage: dict[str, object] = {}
    if data is not None:
        from ferry.registry.fingerprint import fingerprint_data

        digest, rows = fingerprint_data(Path(data))
        lineage.update(data_fingerprint=digest, data_rows=rows)
    if code_ref is not None:
        lineage["code_ref"] = code_ref
    if run_id is not None:
        lineage["run_id"] = run_id
    return lineage
