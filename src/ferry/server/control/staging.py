"""An upload's parts read and laid out on disk: a bundle folder, or the inputs of a build."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from ferry.errors import BundleError, InvalidRequest, PayloadTooLarge, first_problem
from ferry.model.bundle import verify_files
from ferry.model.flavors import FLAVORS
from ferry.model.manifest import MANIFEST_FILE, read_manifest
from ferry.registry import (
    Registry,
    UnpackLimits,
    VersionRecord,
    content_sha256,
    unpack_archive,
)
from ferry.registry import names as rules
from ferry.registry.bundles import check_paths
from ferry.server.control.inspector import InspectSpec
from ferry.server.control.multipart import Part
from ferry.server.control.schemas import UploadMetadata

FILE_PARTS = ("bundle", "model", "example", "reference")
TEXT_PARTS = ("metadata", "requirements", "trust")
KNOWN_PARTS = (*FILE_PARTS, *TEXT_PARTS, "code")
MAX_TEXT_BYTES = 1024 * 1024
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
EXAMPLE_TYPES = {"text/csv": ".csv", "application/json": ".json"}
ENTRYPOINT = re.compile(r"^(?P<file>[^:]+\.py):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True, slots=True)
class UploadForm:
    metadata: UploadMetadata
    bundle: Part | None
    model: Part | None
    example: Part | None
    requirements: list[str] | None
    code: list[Part]
    trust: bool = False  # load pickles the scanner refuses (an admin vouches for the file)
    reference: Part | None = None  # training data to profile for drift (monitoring/profile.py)


def read_form(parts: list[Part]) -> UploadForm:
    """Check which parts came (each at most once, except ``code``) and parse the text ones."""
    by_name: dict[str, list[Part]] = {}
    for part in parts:
        if part.name not in KNOWN_PARTS:
            raise InvalidRequest(
                f"unknown form part {part.name!r}; an upload has {', '.join(KNOWN_PARTS)}",
                field=part.name,
            )
        by_name.setdefault(part.name, []).append(part)
    for name, found in by_name.items():
        if name != "code" and len(found) > 1:
            raise InvalidRequest(f"the form has {len(found)} {name!r} parts; send one", field=name)

    def one(name: str) -> Part | None:
        return by_name.get(name, [None])[0]

    metadata_part, requirements_part = one("metadata"), one("requirements")
    trust_part = one("trust")
    form = UploadForm(
        metadata=_metadata(metadata_part),
        bundle=one("bundle"),
        model=one("model"),
        example=one("example"),
        requirements=None if requirements_part is None else _requirements(requirements_part),
        code=by_name.get("code", []),
        trust=trust_part is not None and _flag(trust_part),
        reference=one("reference"),
    )
    _check_combination(form)
    return form


def _text(part: Part) -> str:
    if part.size > MAX_TEXT_BYTES:
        raise PayloadTooLarge(
            f"the {part.name!r} part is larger than {MAX_TEXT_BYTES} bytes",
            field=part.name,
            limit=MAX_TEXT_BYTES,
        )
    try:
        return part.path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the {part.name!r} part is not UTF-8 text", field=part.name) from exc


def _flag(part: Part) -> bool:
    value = _text(part).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise InvalidRequest(
            f"the {part.name!r} field must be true or false, not {value[:40]!r}", field=part.name
        )
    return value in ("true", "1", "yes")


def _metadata(part: Part | None) -> UploadMetadata:
    if part is None:
        return UploadMetadata()
    text = _text(part)
    try:
        metadata = UploadMetadata.model_validate_json(text or "{}")
    except ValidationError as exc:
        inner, reason = first_problem(exc.errors())
        if exc.errors()[0]["type"] == "json_invalid":
            raise InvalidRequest(f"metadata is not valid JSON: {reason}", field="metadata") from exc
        field = f"metadata.{inner}" if inner else "metadata"
        raise InvalidRequest(f"{field}: {reason}", field=field) from exc
    _check_metadata(metadata)
    return metadata


def _check_metadata(metadata: UploadMetadata) -> None:
    """Everything the registry would refuse later, refused before any work is done."""
    rules.check_text(metadata.description, "description", rules.MAX_DESCRIPTION)
    rules.check_tags(metadata.tags)
    rules.check_tags(metadata.param_strings(), "params")
    rules.check_metrics(metadata.metrics)
    if metadata.alias is not None:
        rules.check_alias(metadata.alias)
    parent = metadata.parent_key()
    if isinstance(parent, tuple):
        rules.check_name(parent[0], "parent")
        rules.check_version(parent[1], "parent")
    elif parent is not None:
        rules.check_version(parent, "parent")
    if metadata.flavor is not None and metadata.flavor not in FLAVORS:
        raise InvalidRequest(
            f"unknown flavor {metadata.flavor!r}; known flavors: {sorted(FLAVORS)}",
            field="metadata.flavor",
        )
    if metadata.entrypoint is not None and not ENTRYPOINT.match(metadata.entrypoint):
        raise InvalidRequest(
            f"entrypoint {metadata.entrypoint!r} must look like 'predictor.py:ClassName'",
            field="metadata.entrypoint",
        )
    lineage = metadata.lineage
    if lineage is not None and lineage.data_rows is not None and lineage.data_rows < 0:
        raise InvalidRequest("lineage.data_rows must be 0 or more", field="metadata.lineage")


def _requirements(part: Part) -> list[str]:
    lines = []
    for number, raw in enumerate(_text(part).splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise InvalidRequest(
                f"requirements line {number} is a pip option ({line.split()[0]}); list only "
                "package requirements",
                field="requirements",
                line=number,
            )
        lines.append(line)
    return lines


def _check_combination(form: UploadForm) -> None:
    raw_inputs = [
        name
        for name, given in (
            ("requirements", form.requirements is not None),
            ("example", form.example is not None),
            ("code", bool(form.code)),
            ("metadata.entrypoint", form.metadata.entrypoint is not None),
            ("metadata.flavor", form.metadata.flavor is not None),
        )
        if given
    ]
    if form.bundle is not None:
        if form.model is not None:
            raise InvalidRequest("send a 'bundle' part or a 'model' part, not both", field="model")
        if raw_inputs:
            raise InvalidRequest(
                f"a bundle carries its own requirements, example and code; drop {raw_inputs}",
                field=raw_inputs[0],
            )
        return
    if form.metadata.entrypoint is not None:
        if form.model is not None:
            raise InvalidRequest(
                "a custom model (metadata.entrypoint) is sent as 'code' parts; put its weights "
                "in the folder its 'artifacts' attribute names, among the code parts",
                field="model",
            )
        return
    if form.model is None:
        raise InvalidRequest(
            "the upload has no model: send a 'bundle' part (a bundle .tar.gz), or a 'model' part "
            "with optional 'requirements', 'example' and 'metadata'",
            field="model",
        )
    if form.code:
        raise InvalidRequest(
            "'code' parts are for custom models: name the class with metadata.entrypoint "
            "('predictor.py:ClassName')",
            field="code",
        )


# --- bundles ------------------------------------------------------------------------------------
def stage_bundle(part: Part, work: Path, limits: UnpackLimits) -> Path:
    """The uploaded archive unpacked as a bundle folder (its root, or its one top folder)."""
    unpacked = unpack_archive(part.path, work / "bundle", limits=limits, field="bundle")
    part.path.unlink()
    if (unpacked / MANIFEST_FILE).is_file():
        return unpacked
    entries = list(unpacked.iterdir())
    if len(entries) == 1 and (entries[0] / MANIFEST_FILE).is_file():
        return entries[0]
    raise BundleError(
        f"the bundle archive has no {MANIFEST_FILE} at its root; archive a folder written by "
        "ferry save (or downloaded from the registry)",
        field="bundle",
    )


def find_existing(registry: Registry, name: str, bundle: Path) -> VersionRecord | None:
    """Check the bundle's files against its manifest, then find a version with its content."""
    manifest = read_manifest(bundle)
    check_paths(manifest)
    verify_files(bundle, manifest.files)
    return registry.metadata.find_version(name, content_sha256(manifest))


# --- raw models ---------------------------------------------------------------------------------
def stage_model(form: UploadForm, work: Path, name: str, limits: UnpackLimits) -> InspectSpec:
    """Lay the raw model, code and example out under ``work/src`` for the inspector to build."""
    src = work / "src"
    src.mkdir()
    source: str
    if form.metadata.entrypoint is not None:
        code = src / "code"
        placed = {_place(part, code, _relative(part)) for part in form.code}
        match = ENTRYPOINT.match(form.metadata.entrypoint)
        assert match is not None  # checked with the metadata
        file = PurePosixPath(match["file"])
        if file not in placed:
            raise InvalidRequest(
                f"entrypoint file {file} is not among the code parts "
                f"({sorted(str(p) for p in placed)})",
                field="metadata.entrypoint",
            )
        source = f"{code.joinpath(*file.parts)}:{match['cls']}"
    else:
        assert form.model is not None
        source = str(_stage_model_file(form.model, src, limits))
    example = None
    if form.example is not None:
        example = _place(
            form.example, src, PurePosixPath(f"example{_example_suffix(form.example)}")
        )
    return InspectSpec(
        mode="build",
        bundle=str(work / "bundle"),
        source=source,
        example=None if example is None else str(src.joinpath(*example.parts)),
        requirements=form.requirements,
        name=name,
        description=form.metadata.description,
        flavor=form.metadata.flavor,
        trust=form.trust,
    )


def _stage_model_file(part: Part, src: Path, limits: UnpackLimits) -> Path:
    filename = _basename(part)
    lowered = filename.lower()
    archive = next((s for s in ARCHIVE_SUFFIXES if lowered.endswith(s)), None)
    if archive is None:
        target = src / filename
        os.replace(part.path, target)
        return target
    folder = unpack_archive(part.path, src / "model", limits=limits, field="model")
    part.path.unlink()
    entries = list(folder.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]  # an archive of one folder (e.g. an MLflow model): that folder
    return folder


def _basename(part: Part) -> str:
    name = (part.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or "\x00" in name:
        raise InvalidRequest(
            f"the {part.name!r} part needs a file name (its suffix tells the model's kind)",
            field=part.name,
        )
    return name


def _relative(part: Part) -> PurePosixPath:
    """A code part's file name as a safe relative path (``predictor.py``, ``artifacts/w.bin``)."""
    text = (part.filename or "").replace("\\", "/")
    path = PurePosixPath(text)
    if (
        not text
        or "\x00" in text
        or path.is_absolute()
        or any(p in ("", ".", "..") for p in text.split("/"))
        or len(text) > 1024
    ):
        raise InvalidRequest(
            f"code file name {part.filename!r} must be a relative path inside the upload",
            field="code",
            filename=str(part.filename),
        )
    return path


def _place(part: Part, root: Path, relative: PurePosixPath) -> PurePosixPath:
    target = root.joinpath(*relative.parts)
    if target.exists():
        raise InvalidRequest(f"the upload has two files named {relative}", field=part.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part.path, target)
    return relative


def _example_suffix(part: Part) -> str:
    suffix = PurePosixPath(part.filename or "").suffix.lower()
    if suffix in (".csv", ".json"):
        return suffix
    if part.content_type in EXAMPLE_TYPES:
        return EXAMPLE_TYPES[part.content_type]
    raise InvalidRequest(
        "the 'example' part must be a .csv or .json file (by its name or content type)",
        field="example",
        filename=str(part.filename),
    )
