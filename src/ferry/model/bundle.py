"""A bundle on disk: the model's files, its manifest and their sha256; written atomically."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry.errors import BundleError, FerryError
from ferry.model.example import (
    EXAMPLE_FILE,
    EXPECTED_FILE,
    example_batch,
    frame_to_split,
    outputs_to_json,
    write_json,
)
from ferry.model.flavors import Flavor, detect_flavor, flavor_for_object, get_flavor
from ferry.model.manifest import MANIFEST_FILE, FileEntry, Manifest
from ferry.model.signature import (
    Batch,
    Signature,
    columns_from_example,
    infer_outputs,
    merge_columns,
    probe_batch,
    to_frame,
)

MODEL_DIR = "model"
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(root: Path) -> list[FileEntry]:
    """Every file under ``root`` except the manifest, sorted, with sha256 and size."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative == MANIFEST_FILE or "__pycache__" in path.parts:
            continue
        entries.append(FileEntry(path=relative, sha256=sha256_file(path), size=path.stat().st_size))
    return entries


def verify_files(root: Path, files: Iterable[FileEntry]) -> None:
    for entry in files:
        path = root / entry.path
        if not path.is_file():
            raise BundleError(f"bundle {root} is missing {entry.path}", path=entry.path)
        if sha256_file(path) != entry.sha256:
            raise BundleError(
                f"bundle {root}: {entry.path} does not match its sha256 (corrupt or edited)",
                path=entry.path,
            )


def save(
    model: object,
    dest: str | Path,
    *,
    example: Any = None,
    name: str | None = None,
    flavor: str | None = None,
    requirements: Iterable[str] | None = None,
    options: Mapping[str, str] | None = None,
    optional: Iterable[str] = (),
    description: str = "",
    overwrite: bool = False,
) -> Manifest:
    """Write ``model`` (an estimator, or a path to a model file/folder) as a bundle at ``dest``.

    Columns named in ``optional`` may be left out of requests (they arrive as missing values).
    The bundle appears only when complete: it is built in a temporary sibling folder and
    renamed into place, so a crash never leaves half a bundle at ``dest``.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BundleError(
            f"{dest} already exists; pass overwrite=True to replace it", path=str(dest)
        )
    source: object = model
    if isinstance(model, str):
        source = Path(model) if ".py:" not in model else model
    chosen = _choose_flavor(source, flavor)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        manifest = _build(
            staging,
            source,
            chosen,
            example,
            name or _default_name(source, dest),
            requirements,
            options or {},
            description,
        )
        if optional:
            manifest = _mark_optional(staging, manifest, set(optional))
        _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _choose_flavor(source: object, flavor: str | None) -> Flavor:
    if flavor is not None:
        return get_flavor(flavor)
    if isinstance(source, Path | str):
        return detect_flavor(Path(source))
    return flavor_for_object(source)


def _default_name(source: object, dest: Path) -> str:
    if isinstance(source, Path):
        return source.stem if source.is_file() else source.name
    if isinstance(source, str):
        return source.rsplit(":", 1)[1].lower()
    return dest.name


def _build(
    staging: Path,
    source: object,
    flavor: Flavor,
    example: Any,
    name: str,
    requirements: Iterable[str] | None,
    options: Mapping[str, str],
    description: str,
) -> Manifest:
    model_dir = staging / MODEL_DIR
    model_dir.mkdir(parents=True)
    saved = flavor.save(source, model_dir)
    flavor_options = {**saved.options, **options}
    predictor = flavor.load(model_dir / saved.artifact, flavor_options)
    declared = predictor.declared_inputs
    frame = None
    if example is not None:
        names = (
            [s.name for s in declared] if declared and all(s.is_scalar for s in declared) else None
        )
        frame = _example_frame(example, names)
        columns = merge_columns(declared, columns_from_example(frame))
    else:
        columns = merge_columns(declared, None)
    inputs_only = Signature(inputs=columns)
    manifest_example = manifest_expected = None
    batch: Batch | None
    if frame is not None:
        split = frame_to_split(frame)
        write_json(staging / EXAMPLE_FILE, split)
        batch = example_batch(split, inputs_only)
        manifest_example = EXAMPLE_FILE
    else:
        batch = probe_batch(inputs_only)
    predictions = predictor.predict(batch) if batch is not None else None
    outputs = infer_outputs(
        predictions if predictions is not None else _empty(), predictor.classes, predictor.has_proba
    )
    if frame is not None and batch is not None and predictions is not None:
        expected = {"predictions": predictions}
        if predictor.has_proba:
            expected["probabilities"] = predictor.predict_proba(batch)
        write_json(staging / EXPECTED_FILE, outputs_to_json(expected))
        manifest_expected = EXPECTED_FILE
    manifest = Manifest(
        name=name,
        flavor=flavor.name,
        artifact=f"{MODEL_DIR}/{saved.artifact}",
        flavor_options=flavor_options,
        signature=Signature(inputs=columns, outputs=outputs),
        created_at=datetime.now(UTC),
        python_version=platform.python_version(),
        libraries=saved.libraries,
        requirements=list(requirements) if requirements is not None else _pins(saved.libraries),
        example=manifest_example,
        expected_output=manifest_expected,
        description=description,
    )
    manifest = manifest.model_copy(update={"files": list_files(staging)})
    manifest.dump(staging / MANIFEST_FILE)
    return manifest


def _mark_optional(staging: Path, manifest: Manifest, optional: set[str]) -> Manifest:
    unknown = sorted(optional - set(manifest.signature.names))
    if unknown:
        raise BundleError(
            f"optional columns {unknown} are not inputs of the model; it has "
            f"{manifest.signature.names}",
            columns=unknown,
        )
    inputs = [
        c.model_copy(update={"required": False, "nullable": True}) if c.name in optional else c
        for c in manifest.signature.inputs
    ]
    signature = manifest.signature.model_copy(update={"inputs": inputs})
    manifest = manifest.model_copy(update={"signature": signature})
    manifest.dump(staging / MANIFEST_FILE)
    return manifest


def _example_frame(example: Any, names: list[str] | None) -> Any:
    import pandas as pd

    if isinstance(example, str | Path):
        path = Path(example)
        if path.suffix.lower() == ".json":
            import orjson

            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict) and "columns" in data and "data" in data:
                return pd.DataFrame(data["data"], columns=data["columns"])
            return to_frame(data, names)
        return pd.read_csv(path)
    if isinstance(example, pd.DataFrame | pd.Series | dict) or names is None:
        return to_frame(example, names)
    frame = to_frame(example, names)
    if len(frame.columns) != len(names):
        raise FerryError(
            f"the example has {len(frame.columns)} columns; the model takes {len(names)}"
        )
    return frame


def _empty() -> Any:
    import numpy as np

    return np.empty(0)


def _pins(libraries: Mapping[str, str]) -> list[str]:
    return [f"{lib}=={ver}" for lib, ver in libraries.items() if ver]


def _move_into_place(staging: Path, dest: Path) -> None:
    if not dest.exists():
        os.replace(staging, dest)
        return
    # replacing a bundle: move the old one aside first so dest is never half-written
    trash = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(dest, trash)
    os.replace(staging, dest)
    shutil.rmtree(trash, ignore_errors=True)
