"""``POST /api/v1/models/{name}/versions``: a multipart upload becomes a registered version.

The body is streamed to a staging folder (size-limited). A ``bundle`` archive is unpacked and
its checksums verified; a raw ``model`` file is built into a bundle. A model that is code
(``ferry.model.kinds``) is refused unless the form says ``trust=true``, and ``trust=true`` is
refused without the ``trust`` scope (``ferry.security.trust``), both before the inspector runs
anything. Either way the model is loaded, and its input example replayed, only in an inspector
child process. The API process
then registers the folder (hashing and storing files, never unpickling) and sets the alias.
Nothing is visible in the registry until ``Registry.register`` commits, and the staging folder
is removed whatever happens.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path, PurePosixPath
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ferry.config.logging import bind_model
from ferry.config.settings import get_settings
from ferry.errors import FerryError, ModelNotFound, UnsafeModel, VersionNotFound
from ferry.model.kinds import ModelKind, classify
from ferry.monitoring.profile import ReferenceProfile, profile_bundle
from ferry.monitoring.storage import MonitoringStore
from ferry.registry import Registry, VersionRecord
from ferry.registry.names import check_name
from ferry.security.public import is_public
from ferry.security.trust import (
    TrustDecision,
    check_version_tags,
    decide_trust,
    refuse_untrusted_code,
)
from ferry.server.control.config import ControlConfig
from ferry.server.control.inspection import Inspector
from ferry.server.control.inspector import InspectReport, InspectSpec
from ferry.server.control.multipart import Part, receive_parts
from ferry.server.control.routing import (
    PUBLISH_MODEL,
    RegistryProvider,
    VersionHook,
    actor_of,
    control_routes,
    principal_of,
)
from ferry.server.control.schemas import UploadMetadata, UploadOut, version_fields
from ferry.server.control.staging import (
    find_existing,
    read_form,
    stage_bundle,
    stage_model,
)
from ferry.server.control.workdirs import WorkDir, relative_paths
from ferry.server.routes import RouteTable

log = logging.getLogger(__name__)

_BINARY = {"type": "string", "format": "binary"}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "bundle": {
                            **_BINARY,
                            "description": "A bundle folder as .tar.gz (what `download` gives). "
                            "Either this or `model`.",
                        },
                        "model": {
                            **_BINARY,
                            "description": "A raw model: .pkl/.joblib/.skops, .onnx, XGBoost "
                            ".json/.ubj, LightGBM .txt, or a folder (an MLflow model) as "
                            ".tar.gz. The flavor is detected from it.",
                        },
                        "requirements": {**_BINARY, "description": "A requirements.txt."},
                        "trust": {
                            "type": "boolean",
                            "description": "Vouch for code: needed for a code model (a custom "
                            "class, an MLflow python_function folder) and for a pickle the "
                            "scanner refuses; with auth on it needs the `trust` scope for the "
                            "model. Recorded in the audit log and the version's "
                            "`ferry.trusted_by` tag.",
                        },
                        "code": {
                            "type": "array",
                            "items": _BINARY,
                            "description": "Custom models: predictor.py and the files it needs, "
                            "named by relative path; see metadata.entrypoint.",
                        },
                        "example": {
                            **_BINARY,
                            "description": "An input example (.csv, or .json as records or "
                            "split): the signature is inferred from it and its answers kept.",
                        },
                        "reference": {
                            **_BINARY,
                            "description": "Training data (.csv, .parquet, .jsonl) to profile "
                            "as the drift reference; without it the input example is profiled.",
                        },
                        "metadata": {
                            "type": "string",
                            "description": "JSON: description, tags, metrics, params, parent "
                            "(a version, or {model, version}), lineage {data_fingerprint, "
                            "data_rows, code_ref, run_id}, alias, entrypoint "
                            "('predictor.py:Class'), flavor, create_model.",
                        },
                    },
                },
                "encoding": {"metadata": {"contentType": "application/json"}},
            }
        },
    }
}


class UploadRoutes:
    def __init__(
        self,
        registry: RegistryProvider,
        config: ControlConfig,
        on_version: VersionHook | None = None,
        monitoring: MonitoringStore | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.monitoring = monitoring or MonitoringStore.from_settings(get_settings())
        self.on_version = on_version  # told of a new version (or an alias moved to one)
        self.inspector = Inspector(
            timeout=config.inspect_timeout_seconds, slots=config.inspector_slots
        )

    def routes(self) -> RouteTable:
        routes = control_routes(tags=["registry"])
        routes.add(
            # ``:path`` so that a name with '/' reaches check_name (400 invalid_name), not a 404
            "/models/{name:path}/versions",
            self.upload,
            "POST",
            PUBLISH_MODEL,
            status_code=201,
            response_model=UploadOut,
            responses={200: {"model": UploadOut, "description": "Already registered"}},
            openapi_extra=UPLOAD_BODY,
        )
        return routes

    async def upload(self, name: str, request: Request) -> Response:
        """Register a new version from a bundle archive or a raw model file (multipart).

        Answers 201 with the new version, or 200 with the existing one when the same content
        is already registered. The model is created on its first upload.
        """
        check_name(name)
        registry = self.registry()
        actor = actor_of(request)
        root = await anyio.to_thread.run_sync(self.config.staging_root)
        work = await anyio.to_thread.run_sync(WorkDir, root, "upload")
        try:
            record, created, metadata = await self._receive(registry, name, request, work.path)
        except FerryError as exc:
            relative_paths(exc, work.path)  # messages name the upload's files, not ours
            raise
        finally:
            await anyio.to_thread.run_sync(work.remove)
        bind_model(name, str(record.version))  # on this request's access line
        if metadata.alias is not None:
            set_alias = functools.partial(registry.set_alias, actor=actor)
            await anyio.to_thread.run_sync(set_alias, name, metadata.alias, record.version)
        if self.on_version is not None and (created or metadata.alias is not None):
            await anyio.to_thread.run_sync(self.on_version, name, record.version, actor)
        aliases = (await anyio.to_thread.run_sync(registry.get_model, name)).aliases
        answer = UploadOut.model_validate(
            {**version_fields(record, aliases), "created": created, "alias": metadata.alias}
        )
        return Response(
            answer.model_dump_json(),
            status_code=201 if created else 200,
            media_type="application/json",
        )

    async def _receive(
        self, registry: Registry, name: str, request: Request, work: Path
    ) -> tuple[VersionRecord, bool, UploadMetadata]:
        parts_dir = work / "parts"
        parts_dir.mkdir()
        parts = await receive_parts(request, parts_dir, limit=self.config.max_upload_bytes)
        form = await anyio.to_thread.run_sync(read_form, parts)
        metadata = form.metadata
        check_version_tags(metadata.tags, "metadata.tags")
        await anyio.to_thread.run_sync(_check_targets, registry, name, metadata)
        # 403 before anything is unpacked: trust=true is a decision only the trust scope makes
        decision = decide_trust(principal_of(request), name) if form.trust else None
        report: InspectReport | None = None
        limits = self.config.unpack
        if form.bundle is not None:
            bundle = await anyio.to_thread.run_sync(stage_bundle, form.bundle, work, limits)
            check = functools.partial(_code_checked, bundle, None, decision, name, work)
            kind = await anyio.to_thread.run_sync(check)
            existing = await anyio.to_thread.run_sync(find_existing, registry, name, bundle)
            if existing is None:
                # find_existing verified every checksum; the inspector need not hash again
                spec = InspectSpec(mode="check", bundle=str(bundle), verify=False, trust=form.trust)
                report = await self._inspect(name, spec, work)
        else:
            spec = await anyio.to_thread.run_sync(stage_model, form, work, name, limits)
            source = spec.source or spec.bundle
            check = functools.partial(_code_checked, source, spec.flavor, decision, name, work)
            kind = await anyio.to_thread.run_sync(check)
            report = await self._inspect(name, spec, work)
            bundle = Path(spec.bundle)
            existing = await anyio.to_thread.run_sync(find_existing, registry, name, bundle)
        # a bad reference file is refused before anything is registered
        profile = await anyio.to_thread.run_sync(_profile, bundle, form.reference)
        if existing is not None:
            if form.reference is not None and profile is not None:
                await anyio.to_thread.run_sync(_save_profile, self.monitoring, existing, profile)
            return existing, False, metadata
        scan = None if report is None else report.scan
        audit: dict[str, object] = {} if scan is None else {"pickle_scan": scan}
        tags = dict(metadata.tags)
        if decision is not None:
            public = await anyio.to_thread.run_sync(_is_public_model, registry, name)
            audit["trust"] = True
            audit["trusted"] = decision.audit(kind, scan, public=public)
            tags.update(decision.tags(kind))
            log.warning(
                "model registered with trust=true",
                extra={"model": name, "by": decision.by, "code": kind.reasons, "scan": scan},
            )
        actor = actor_of(request)
        register = functools.partial(
            _register, registry, name, bundle, metadata, tags, audit, actor
        )
        record = await anyio.to_thread.run_sync(register)
        if profile is not None:
            await anyio.to_thread.run_sync(_save_profile, self.monitoring, record, profile)
        return record, True, metadata

    async def _inspect(self, name: str, spec: InspectSpec, work: Path) -> InspectReport:
        try:
            return await self.inspector.run(spec, work)
        except UnsafeModel as exc:
            # a refused pickle is a security event: say what it tried to import
            log.warning(
                "unsafe model upload refused",
                extra={"model": name, "globals": exc.details.get("globals")},
            )
            raise


def _profile(bundle: Path, reference: Part | None) -> ReferenceProfile | None:
    if reference is None:
        return profile_bundle(bundle)
    suffix = PurePosixPath(reference.filename or "").suffix or None
    return profile_bundle(bundle, reference.path, suffix=suffix)


def _save_profile(store: MonitoringStore, record: VersionRecord, profile: ReferenceProfile) -> None:
    store.save_profile(record.model, record.version, profile)


def _check_targets(registry: Registry, name: str, metadata: UploadMetadata) -> None:
    """404 before any work for a model that must exist, or a parent that does not."""
    if not metadata.create_model:
        registry.get_model(name)
    parent = metadata.parent_key()
    if isinstance(parent, tuple):
        registry.get_version(*parent)
    elif parent is not None:
        if not _has_model(registry, name):
            raise VersionNotFound(
                f"parent version {parent} of model {name!r} does not exist: the model has no "
                "versions yet",
                model=name,
                version=parent,
            )
        registry.get_version(name, parent)


def _has_model(registry: Registry, name: str) -> bool:
    try:
        registry.get_model(name)
    except ModelNotFound:
        return False
    return True


def _code_checked(
    source: str | Path,
    flavor: str | None,
    decision: TrustDecision | None,
    name: str,
    work: Path,
) -> ModelKind:
    """The staged model's kind, from its files alone (nothing is imported or unpickled);
    UnsafeModel for code sent without trust=true, before the inspector runs any of it. The
    reasons name files as the upload did, never by their staging path."""
    found = classify(source, flavor)
    roots = [f"{root}/" for root in (work / "src" / "code", work / "src", work)]
    reasons = []
    for reason in found.reasons:
        for root in roots:
            reason = reason.replace(root, "")
        reasons.append(reason)
    kind = ModelKind(tuple(reasons))
    if kind.is_code and decision is None:
        log.warning(
            "untrusted code model upload refused", extra={"model": name, "code": kind.reasons}
        )
        raise refuse_untrusted_code(kind, name)
    return kind


def _is_public_model(registry: Registry, name: str) -> bool:
    try:
        return is_public(registry.get_model(name).tags)
    except ModelNotFound:
        return False


def _register(
    registry: Registry,
    name: str,
    bundle: Path,
    metadata: UploadMetadata,
    tags: dict[str, str],
    audit: dict[str, object],
    actor: str,
) -> VersionRecord:
    return registry.register(
        bundle,
        name,
        parent=metadata.parent_key(),
        lineage=metadata.lineage_record(),
        metrics=metadata.metrics,
        params=metadata.param_strings(),
        tags=tags,
        description=metadata.description,
        create_model=metadata.create_model,
        audit=audit,
        actor=actor,
    )
