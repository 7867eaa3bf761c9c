"""The registry half of ``Client``: models, versions, uploads, aliases, lineage, downloads."""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from ferry.client.schemas import (
    Alias,
    AliasMove,
    AuditEntry,
    LineageGraph,
    ModelVersion,
    Page,
    RegisteredModel,
)
from ferry.client.transfer import (
    Meter,
    Progress,
    lineage_metadata,
    plan_upload,
    unpack_bundle,
    write_stream,
)
from ferry.errors import FerryError, InvalidRequest

if TYPE_CHECKING:
    import pandas as pd

A = TypeVar("A", bound=BaseModel)
API = "/api/v1"
# the server checks an upload (loading the model) before answering, and materializes a
# version's files before a download starts: longer than a prediction's timeout
TRANSFER_READ_TIMEOUT = 900.0


class RegistryCalls(ABC):
    """Calls on ``/api/v1``; mixed into ``Client``, which supplies the HTTP plumbing."""

    @abstractmethod
    def _request(
        self, method: str, path: str, *, read_timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request; an error answer raises the FerryError it names."""

    @abstractmethod
    def _stream(
        self, method: str, path: str, *, read_timeout: float | None = None
    ) -> AbstractContextManager[httpx.Response]:
        """A streamed response (downloads)."""

    # --- models -------------------------------------------------------------------------------
    def registered_models(
        self,
        *,
        tag: str | None = None,
        prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[RegisteredModel]:
        """Models in the registry; ``tag`` is ``key`` or ``key=value``."""
        params = _params(tag=tag, prefix=prefix, limit=limit, offset=offset)
        answer = self._request("GET", f"{API}/models", params=params)
        return _parse(Page[RegisteredModel], answer)

    def registered_model(self, name: str) -> RegisteredModel:
        return _parse(RegisteredModel, self._request("GET", _model_path(name)))

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        return _parse(RegisteredModel, self._request("POST", f"{API}/models", json=body))

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        body: dict[str, object] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        return _parse(RegisteredModel, self._request("PATCH", _model_path(name), json=body))

    def delete_model(self, name: str) -> None:
        self._request("DELETE", _model_path(name))

    # --- versions -----------------------------------------------------------------------------
    def register(
        self,
        path: str | Path,
        name: str,
        *,
        alias: str | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, str] | None = None,
        parent: int | tuple[str, int] | None = None,
        data: str | Path | None = None,
        description: str = "",
        requirements: str | Path | None = None,
        example: str | Path | pd.DataFrame | None = None,
        code: Sequence[str | Path] = (),
        flavor: str | None = None,
        code_ref: str | None = None,
        run_id: str | None = None,
        create_model: bool = True,
        trust: bool = False,
        progress: Progress | None = None,
        reference: str | Path | None = None,
    ) -> ModelVersion:
        """Upload ``path`` as the next version of ``name`` and return it.

        ``path`` is a bundle folder (or its ``.tar.gz``), a raw model file (``.pkl``,
        ``.joblib``, ``.onnx`` ...), an MLflow model folder, or ``predictor.py:ClassName`` (with
        its other files in ``code``). For a raw model, ``example`` (a .csv/.json file or a
        DataFrame) gives the signature. ``data`` is the training data file: its fingerprint and
        row count are computed here and stored as lineage. Uploading content that is already
        registered returns that version (``created`` is False). ``trust`` vouches for code: a
        code model (``predictor.py:Class``, an MLflow python_function folder) or a pickle the
        server's scanner refuses is registered only with it, from a key holding the ``trust``
        scope for the model (recorded in the audit log).
        .jsonl) is profiled on the server as the version's drift reference.
        """
        with tempfile.TemporaryDirectory(prefix="ferry-upload-") as tmp:
            parts, entrypoint = plan_upload(
                path, Path(tmp), requirements=requirements, example=example, code=code
            )
            if reference is not None:
                if not Path(reference).is_file():
                    raise InvalidRequest(f"{reference} is not a file", path=str(reference))
                parts.add("reference", Path(reference))
            parts.metadata = _upload_metadata(
                description=description,
                tags=tags,
                metrics=metrics,
                params=params,
                parent=parent,
                lineage=lineage_metadata(data, code_ref, run_id),
                alias=alias,
                entrypoint=entrypoint,
                flavor=flavor,
                create_model=create_model,
            )
            if trust:
                parts.fields["trust"] = "true"
            with parts.opened(progress) as files:
                response = self._request(
                    "POST",
                    f"{_model_path(name)}/versions",
                    files=files,
                    read_timeout=TRANSFER_READ_TIMEOUT,
                )
        return _parse(ModelVersion, response)

    def versions(
        self,
        name: str,
        *,
        tag: str | None = None,
        metric: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ModelVersion]:
        """The model's versions, newest first; ``metric`` is a condition like ``acc>=0.9``."""
        params = _params(tag=tag, metric=metric, limit=limit, offset=offset)
        answer = self._request("GET", f"{_model_path(name)}/versions", params=params)
        return _parse(Page[ModelVersion], answer)

    def version(self, name: str, version: int) -> ModelVersion:
        return _parse(ModelVersion, self._request("GET", _version_path(name, version)))

    def resolve(self, ref: str) -> ModelVersion:
        """``iris/3`` or ``iris:3``, ``iris@staging``, or ``iris`` (its ``production`` alias if
        set, else its latest version)."""
        from ferry.errors import VersionNotFound
        from ferry.registry.names import PRODUCTION, parse_ref

        parsed = parse_ref(ref)
        if parsed.version is not None:
            return self.version(parsed.model, parsed.version)
        if parsed.alias is not None:
            return self.version(parsed.model, self.alias(parsed.model, parsed.alias).version)
        model = self.registered_model(parsed.model)
        number = model.aliases.get(PRODUCTION, model.latest_version)
        if number is None:
            raise VersionNotFound(f"model {model.name!r} has no versions yet", model=model.name)
        return self.version(parsed.model, number)

    def tag_version(
        self, name: str, version: int, tags: Mapping[str, str], *, replace: bool = False
    ) -> ModelVersion:
        body = {"tags": dict(tags), "replace": replace}
        answer = self._request("PATCH", _version_path(name, version), json=body)
        return _parse(ModelVersion, answer)

    def log_metrics(self, name: str, version: int, metrics: Mapping[str, float]) -> ModelVersion:
        body = {"metrics": dict(metrics)}
        answer = self._request("POST", f"{_version_path(name, version)}/metrics", json=body)
        return _parse(ModelVersion, answer)

    def lineage(self, name: str, version: int) -> LineageGraph:
        """The version's ancestors (parent first) and descendants (breadth first)."""
        answer = self._request("GET", f"{_version_path(name, version)}/lineage")
        return _parse(LineageGraph, answer)

    def download(
        self, name: str, version: int, dest: str | Path, *, progress: Progress | None = None
    ) -> Path:
        """Save the version's bundle archive (``.tar.gz``) at ``dest``."""
        dest = Path(dest)
        path = f"{_version_path(name, version)}/download"
        with self._stream("GET", path, read_timeout=TRANSFER_READ_TIMEOUT) as response:
            length = response.headers.get("content-length", "")
            meter = Meter(int(length) if length.isdigit() else None, progress)
            return write_stream(response.iter_bytes(), dest, meter)

    def pull(
        self,
        ref: str,
        dest: str | Path | None = None,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> Path:
        """Download ``ref`` (``iris@production``, ``iris/3``, ``iris``) and unpack it as a
        bundle folder, checksums verified; ``dest`` defaults to ``./<model>-<version>``."""
        found = self.resolve(ref)
        target = Path(dest) if dest is not None else Path(f"{found.model}-{found.version}")
        with tempfile.TemporaryDirectory(prefix="ferry-pull-") as tmp:
            archive = self.download(
                found.model, found.version, Path(tmp) / "bundle.tar.gz", progress=progress
            )
            return unpack_bundle(archive, target, overwrite=overwrite)

    # --- aliases ------------------------------------------------------------------------------
    def aliases(self, name: str) -> list[Alias]:
        answer = self._request("GET", f"{_model_path(name)}/aliases", params={"limit": 1000})
        return _parse(Page[Alias], answer).items

    def alias(self, name: str, alias: str) -> Alias:
        return _parse(Alias, self._request("GET", _alias_path(name, alias)))

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point ``alias`` at ``version`` (creates it, or moves it)."""
        answer = self._request("PUT", _alias_path(name, alias), json={"version": version})
        return _parse(Alias, answer)

    def delete_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", _alias_path(name, alias))

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        """Every move of the alias, oldest first."""
        answer = self._request("GET", f"{_alias_path(name, alias)}/history", params={"limit": 1000})
        return _parse(Page[AliasMove], answer).items

    def audit(self, *, limit: int = 100, offset: int = 0) -> Page[AuditEntry]:
        """Writes to the registry, newest first."""
        answer = self._request("GET", f"{API}/audit", params=_params(limit=limit, offset=offset))
        return _parse(Page[AuditEntry], answer)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _model_path(name: str) -> str:
    return f"{API}/models/{_segment(name)}"


def _version_path(name: str, version: int) -> str:
    return f"{_model_path(name)}/versions/{_segment(str(version))}"


def _alias_path(name: str, alias: str) -> str:
    return f"{_model_path(name)}/aliases/{_segment(alias)}"


def _params(**values: object) -> dict[str, str]:
    return {key: str(value) for key, value in values.items() if value is not None}


def _upload_metadata(
    *,
    description: str,
    tags: Mapping[str, str] | None,
    metrics: Mapping[str, float] | None,
    params: Mapping[str, object] | None,
    parent: int | tuple[str, int] | None,
    lineage: Mapping[str, object],
    alias: str | None,
    entrypoint: str | None,
    flavor: str | None,
    create_model: bool,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "description": description,
        "tags": dict(tags or {}),
        "metrics": dict(metrics or {}),
        "params": {key: str(value) for key, value in (params or {}).items()},
        "create_model": create_model,
    }
    if isinstance(parent, tuple):
        metadata["parent"] = {"model": parent[0], "version": parent[1]}
    elif parent is not None:
        metadata["parent"] = parent
    optional = {"lineage": dict(lineage) or None, "alias": alias, "entrypoint": entrypoint}
    metadata.update({k: v for k, v in {**optional, "flavor": flavor}.items() if v is not None})
    return metadata


def _parse(kind: type[A], response: httpx.Response) -> A:
    try:
        return kind.model_validate_json(response.content)
    except ValidationError as exc:
        raise FerryError(
            f"the server answered {response.request.url.path} with an unexpected body: {exc}"
        ) from exc
