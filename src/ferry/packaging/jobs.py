"""Build jobs: an image build of one version running in a background thread of the server,
its status and log kept in the ``builds`` table so any server process can report on it.

One live (queued or running) build per version, enforced by the database: the ``active``
column holds "model/version" while a build is live and has a unique constraint. A running
build touches ``updated_at`` at least every ``HEARTBEAT_SECONDS``; a live build silent for
``STALE_SECONDS`` belonged to a server that stopped, and is marked failed when seen.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ferry.db.engine import create_engine, describe
from ferry.errors import BuildInProgress, BuildNotFound, FerryError, StorageError
from ferry.packaging.images import ImageOptions, build_image
from ferry.packaging.tables import builds
from ferry.registry.service import Registry

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
LIVE = (QUEUED, RUNNING)
HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 120.0
FLUSH_SECONDS = 0.5
MAX_LOG_CHARS = 4_000_000  # beyond this the head of the log is dropped (the tail has the error)


@dataclass(frozen=True, slots=True)
class BuildRecord:
    id: str
    model: str
    version: int
    status: str
    options: dict[str, Any]
    image: str | None
    size: int | None
    pushed: str | None
    error: str | None
    log: str
    actor: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class BuildStore:
    """The ``builds`` table (the registry's own database, already migrated)."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(database_url)

    def close(self) -> None:
        self._engine.dispose()

    def create(self, model: str, version: int, options: dict[str, Any], actor: str) -> BuildRecord:
        now = datetime.now(UTC)
        build_id = uuid.uuid4().hex
        row = {
            "id": build_id,
            "model": model,
            "version": version,
            "status": QUEUED,
            "active": f"{model}/{version}",
            "options": options,
            "log": "",
            "actor": actor,
            "created_at": now,
            "updated_at": now,
        }
        for attempt in range(2):
            try:
                with self._engine.begin() as conn:
                    conn.execute(builds.insert().values(**row))
                return self.get(build_id)
            except IntegrityError as exc:
                live = self._live(model, version)
                if attempt == 0 and live is not None and self._expire_if_stale(live):
                    continue
                raise BuildInProgress(
                    f"{model} version {version} already has a build in progress"
                    + (f" ({live.id})" if live else ""),
                    build=live.id if live else None,
                ) from exc
            except SQLAlchemyError as exc:
                raise StorageError(f"cannot record the build: {describe(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, build_id: str) -> BuildRecord:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(builds).where(builds.c.id == build_id)).mappings().first()
        if row is None:
            raise BuildNotFound(f"no build {build_id!r}", build=build_id)
        record = _record(row)
        if record.status in LIVE and self._expire_if_stale(record):
            return self.get(build_id)
        return record

    def list(self, model: str, version: int) -> list[BuildRecord]:
        query = (
            sa.select(builds)
            .where(builds.c.model == model, builds.c.version == version)
            .order_by(builds.c.created_at.desc())
        )
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def running(self, build_id: str) -> None:
        self._update(build_id, status=RUNNING)

    def append(self, build_id: str, text: str) -> None:
        """Add to the log (also the heartbeat: updated_at moves)."""
        self._update(build_id, log=builds.c.log + text)

    def finish(
        self,
        build_id: str,
        *,
        error: str | None,
        image: str | None = None,
        size: int | None = None,
        pushed: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        self._update(
            build_id,
            status=FAILED if error is not None else SUCCEEDED,
            active=None,
            error=error,
            image=image,
            size=size,
            pushed=pushed,
            finished_at=now,
        )
        with self._engine.begin() as conn:  # keep the tail when a log grew too long
            length = sa.func.length(builds.c.log)
            conn.execute(
                builds.update()
                .where(builds.c.id == build_id, length > MAX_LOG_CHARS)
                .values(log=sa.func.substr(builds.c.log, length - MAX_LOG_CHARS + 1))
            )

    def _update(self, build_id: str, **values: Any) -> None:
        values.setdefault("updated_at", datetime.now(UTC))
        with self._engine.begin() as conn:
            conn.execute(builds.update().where(builds.c.id == build_id).values(**values))

    def _live(self, model: str, version: int) -> BuildRecord | None:
        query = sa.select(builds).where(builds.c.active == f"{model}/{version}")
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    def _expire_if_stale(self, record: BuildRecord) -> bool:
        """Mark a live build whose server stopped (no heartbeat) as failed; True if it was."""
        limit = datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)
        with self._engine.begin() as conn:
            done = conn.execute(
                builds.update()
                .where(
                    builds.c.id == record.id,
                    builds.c.status.in_(LIVE),
                    builds.c.updated_at < limit,
                )
                .values(
                    status=FAILED,
                    active=None,
                    error="abandoned: the server running this build stopped",
                    finished_at=datetime.now(UTC),
                )
            )
        return bool(done.rowcount)


def _record(row: Any) -> BuildRecord:
    fields = {name: row[name] for name in BuildRecord.__dataclass_fields__}
    return BuildRecord(**fields)


def options_dict(options: ImageOptions) -> dict[str, Any]:
    return {key: value for key, value in asdict(options).items() if value is not None}


class _LogBuffer:
    """Collects log lines and writes them to the store at most every FLUSH_SECONDS."""

    def __init__(self, store: BuildStore, build_id: str) -> None:
        self.store, self.build_id = store, build_id
        self.pending: list[str] = []
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            self.pending.append(line + "\n")
            if time.monotonic() - self.last >= FLUSH_SECONDS:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        text = "".join(self.pending)
        self.pending.clear()
        self.last = time.monotonic()
        self.store.append(self.build_id, text)  # an empty append is the heartbeat


class BuildJobs:
    """Starts builds in daemon threads of this process; the store keeps what they did."""

    def __init__(self, store: BuildStore, registry: Callable[[], Registry]) -> None:
        self.store = store
        self.registry = registry

    def start(self, model: str, version: int, options: ImageOptions, actor: str) -> BuildRecord:
        record = self.registry().get_version(model, version)  # 404 before anything is queued
        build = self.store.create(record.model, record.version, options_dict(options), actor)
        thread = threading.Thread(
            target=self._run, args=(build.id, options), name=f"ferry-build-{build.id[:8]}"
        )
        thread.daemon = True
        thread.start()
        return build

    def _run(self, build_id: str, options: ImageOptions) -> None:
        build = self.store.get(build_id)
        buffer = _LogBuffer(self.store, build_id)
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                buffer.flush()

        threading.Thread(target=heartbeat, daemon=True, name="ferry-build-heartbeat").start()
        try:
            self.store.running(build_id)
            registry = self.registry()
            version = registry.get_version(build.model, build.version)
            built = build_image(registry, version, options, buffer)
        except FerryError as exc:
            buffer(f"build failed: {exc.message}")
            buffer.flush()
            self.store.finish(build_id, error=exc.message)
        except Exception as exc:  # a thread boundary: record it, never kill the server
            log.exception("build %s crashed", build_id)
            buffer(f"build crashed: {type(exc).__name__}: {exc}")
            buffer.flush()
            self.store.finish(build_id, error=f"{type(exc).__name__}: {exc}")
        else:
            buffer.flush()
            self.store.finish(
                build_id, error=None, image=built.image, size=built.size, pushed=built.pushed
            )
        finally:
            done.set()
