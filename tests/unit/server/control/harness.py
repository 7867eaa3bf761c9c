"""The control-plane router in a bare FastAPI app over a real registry (SQLite + a folder)."""

from __future__ import annotations

import io
import tarfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from ferry.errors import FerryError
from ferry.registry import Registry, write_archive
from ferry.server.control import ControlConfig, control_routes
from ferry.server.errors import ferry_error_handler, http_error_handler, unexpected_error_handler

with warnings.catch_warnings():
    # Starlette 1.x nudges TestClient users towards httpx2; httpx is what Ferry's client uses
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

API = "/api/v1"


@dataclass
class Snapshot:
    rows: dict[str, int]
    blobs: list[str]


@dataclass
class Control:
    http: TestClient
    registry: Registry
    root: Path
    config: ControlConfig

    def snapshot(self) -> Snapshot:
        """Every table's row count and every stored blob (the audit log included)."""
        blobs = sorted(
            p.relative_to(self.root).as_posix()
            for p in (self.root / "artifacts").rglob("*")
            if p.is_file()
        )
        return Snapshot(self.registry.metadata.row_counts(), blobs)

    def staging_leftovers(self) -> list[str]:
        staging = self.config.work_dir
        assert staging is not None
        return sorted(p.name for p in staging.iterdir()) if staging.exists() else []

    def upload(
        self,
        name: str,
        *,
        bundle: Path | None = None,
        model: Path | None = None,
        example: Path | None = None,
        metadata: dict[str, object] | None = None,
        extra: list[tuple[str, tuple[str, bytes]]] | None = None,
    ) -> object:
        files: list[tuple[str, tuple[str, bytes] | tuple[str, bytes, str]]] = []
        if bundle is not None:
            files.append(("bundle", ("bundle.tar.gz", archive_bytes(bundle))))
        if model is not None:
            files.append(("model", (model.name, model.read_bytes())))
        if example is not None:
            files.append(("example", (example.name, example.read_bytes())))
        if metadata is not None:
            files.append(
                ("metadata", ("metadata.json", orjson.dumps(metadata), "application/json"))
            )
        files.extend(extra or [])
        return self.http.post(f"{API}/models/{name}/versions", files=files)


def archive_bytes(bundle: Path) -> bytes:
    """The bundle as the registry archives it (``.tar.gz``, entries relative to its root)."""
    target = bundle.parent / f".{bundle.name}.test.tar.gz"
    write_archive(bundle, target)
    try:
        return target.read_bytes()
    finally:
        target.unlink()


def tar_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_app(registry: Registry, config: ControlConfig, database_url: str) -> FastAPI:
    app = FastAPI(title="control plane under test")
    app.add_exception_handler(FerryError, ferry_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    from ferry.monitoring.storage import MonitoringStore

    # monitoring's own store, over the registry's database file (not FERRY_HOME's)
    monitoring = MonitoringStore.open(database_url)
    control_routes(lambda: registry, config=config, monitoring=monitoring).install(app)
    return app


@contextmanager
def running_control(root: Path, **config: object) -> Iterator[Control]:
    settings = ControlConfig(work_dir=root / "staging", **config)  # type: ignore[arg-type]
    url = f"sqlite:///{root / 'ferry.db'}"
    with Registry.open(url, str(root / "artifacts")) as registry:
        app = build_app(registry, settings, url)
        with TestClient(app, raise_server_exceptions=False) as http:
            yield Control(http, registry, root, settings)
