"""The metadata store on SQLAlchemy 2 Core: SQLite (embedded) or PostgreSQL (psycopg 3).

Writes to one model are serialised by locking its row (``SELECT ... FOR UPDATE`` on
PostgreSQL; ``BEGIN IMMEDIATE`` serialises every writer on SQLite), so version numbers are
allocated gap-free inside the transaction that inserts the version. The engine is thread-safe
(a connection pool); open a new store after ``fork()``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ferry.db.engine import Connections, create_engine, is_postgres
from ferry.errors import ModelExists, VersionNotFound
from ferry.registry.filters import MetricFilter, TagFilter
from ferry.registry.metadata.base import NewVersion
from ferry.registry.metadata.rows import (
    ALIAS_COLUMNS,
    VERSION_COLUMNS,
    alias_record,
    alias_row,
    load_models,
    load_versions,
    model_row,
    version_row,
)
from ferry.registry.records import (
    AliasEvent,
    AliasRecord,
    AuditEvent,
    ModelRecord,
    Page,
    VersionRecord,
)
from ferry.registry.tables import (
    TABLES,
    alias_history,
    aliases,
    audit_log,
    model_tags,
    models,
    version_files,
    version_metrics,
    version_tags,
    versions,
)


def _compare(column: sa.ColumnElement[float], op: str, value: float) -> sa.ColumnElement[bool]:
    if op == ">=":
        return column >= value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == "<":
        return column < value
    if op == "!=":
        return column != value
    return column == value


def _now() -> datetime:
    return datetime.now(UTC)


class SqlMetadataStore:
    def __init__(self, url: str) -> None:
        self._engine = create_engine(url)
        self._db = Connections(self._engine, "the registry database")
        self._url = self._db.url

    @classmethod
    def from_url(cls, url: str) -> SqlMetadataStore:
        return cls(url)

    @property
    def url(self) -> str:
        return self._url

    @property
    def engine(self) -> Engine:
        """The engine, for tables other layers keep in the same database (monitoring)."""
        return self._engine

    def migrate(self) -> str:
        from ferry.db.migrations import upgrade_engine

        return upgrade_engine(self._engine)

    # --- models -------------------------------------------------------------------------------
    def create_model(
        self, name: str, *, description: str, tags: dict[str, str], actor: str
    ) -> ModelRecord:
        with self._db.write() as conn:
            if not self._insert_model(conn, name, description):
                raise ModelExists(f"model {name!r} already exists", model=name)
            row = model_row(conn, name)
            self._replace_model_tags(conn, row.id, tags)
            _audit(conn, actor, "model.create", name, {"description": description, "tags": tags})
            return load_models(conn, [row])[0]

    def get_model(self, name: str) -> ModelRecord:
        with self._db.read() as conn:
            return load_models(conn, [model_row(conn, name)])[0]

    def list_models(
        self, *, tag: TagFilter | None, name_prefix: str | None, limit: int, offset: int
    ) -> Page[ModelRecord]:
        conditions: list[sa.ColumnElement[bool]] = []
        if name_prefix:
            conditions.append(models.c.name.startswith(name_prefix, autoescape=True))
        if tag is not None:
            tagged = sa.select(model_tags.c.model_id).where(model_tags.c.key == tag.key)
            if tag.value is not None:
                tagged = tagged.where(model_tags.c.value == tag.value)
            conditions.append(models.c.id.in_(tagged))
        with self._db.read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(models).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                sa.select(models)
                .where(*conditions)
                .order_by(models.c.name)
                .limit(limit)
                .offset(offset)
            ).all()
            return Page(load_models(conn, rows), total, limit, offset)

    def update_model(
        self, name: str, *, description: str | None, tags: dict[str, str] | None, actor: str
    ) -> ModelRecord:
        with self._db.write() as conn:
            row = model_row(conn, name, lock=True)
            values: dict[str, Any] = {"updated_at": _now()}
            if description is not None:
                values["description"] = description
            conn.execute(sa.update(models).where(models.c.id == row.id).values(**values))
            if tags is not None:
                self._replace_model_tags(conn, row.id, tags)
            _audit(conn, actor, "model.update", name, {"description": description, "tags": tags})
            return load_models(conn, [model_row(conn, name)])[0]

    def delete_model(self, name: str, *, actor: str) -> None:
        with self._db.write() as conn:
            row = model_row(conn, name, lock=True)
            conn.execute(sa.delete(models).where(models.c.id == row.id))
            _audit(conn, actor, "model.delete", name, {"latest_version": row.latest_version})

    def _insert_model(self, conn: Connection, name: str, description: str) -> bool:
        """Insert the model unless it exists (waits for a concurrent insert to settle)."""
        if is_postgres(conn):
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        now = _now()
        inserted = conn.execute(
            insert(models)
            .values(
                name=name,
                description=description,
                latest_version=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(models.c.id)
        ).scalar_one_or_none()
        return inserted is not None

    def _replace_model_tags(self, conn: Connection, model_id: int, tags: dict[str, str]) -> None:
        conn.execute(sa.delete(model_tags).where(model_tags.c.model_id == model_id))
        if tags:
            conn.execute(
                sa.insert(model_tags),
                [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()],
            )

    # --- versions -----------------------------------------------------------------------------
    def add_version(
        self, new: NewVersion, *, actor: str, create_model: bool
    ) -> tuple[VersionRecord, bool]:
        with self._db.write() as conn:
            if create_model and self._insert_model(conn, new.model, ""):
                _audit(conn, actor, "model.create", new.model, {"by": "register"})
            model = model_row(conn, new.model, lock=True)
            existing = conn.execute(
                VERSION_COLUMNS.where(
                    versions.c.model_id == model.id, versions.c.sha256 == new.sha256
                )
            ).first()
            if existing is not None:
                return load_versions(conn, [existing])[0], False
            if new.parent is not None:
                version_row(conn, *new.parent)  # ModelNotFound / VersionNotFound
            number = model.latest_version + 1
            now = _now()
            version_id = conn.execute(
                sa.insert(versions).values(
                    model_id=model.id,
                    number=number,
                    sha256=new.sha256,
                    flavor=new.flavor,
                    signature=new.signature.model_dump(mode="json"),
                    size=new.size,
                    requirements=new.requirements,
                    params=new.params,
                    description=new.description,
                    manifest=new.manifest.model_dump(mode="json", exclude_none=True),
                    created_at=now,
                    created_by=actor,
                    parent_model=new.parent[0] if new.parent else None,
                    parent_version=new.parent[1] if new.parent else None,
                    data_fingerprint=new.lineage.data_fingerprint,
                    data_rows=new.lineage.data_rows,
                    code_ref=new.lineage.code_ref,
                    run_id=new.lineage.run_id,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                sa.insert(version_files),
                [
                    {"version_id": version_id, "path": f.path, "sha256": f.sha256, "size": f.size}
                    for f in new.files
                ],
            )
            _upsert(conn, version_tags, version_id, new.tags)
            _upsert(conn, version_metrics, version_id, new.metrics)
            conn.execute(
                sa.update(models)
                .where(models.c.id == model.id)
                .values(latest_version=number, updated_at=now)
            )
            _audit(
                conn,
                actor,
                "version.create",
                f"{new.model}/{number}",
                {"sha256": new.sha256, "size": new.size, "flavor": new.flavor, **new.audit},
            )
            return load_versions(conn, [version_row(conn, new.model, number)])[0], True

    def find_version(self, name: str, sha256: str) -> VersionRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                VERSION_COLUMNS.where(models.c.name == name, versions.c.sha256 == sha256)
            ).first()
            return None if row is None else load_versions(conn, [row])[0]

    def get_version(self, name: str, version: int) -> VersionRecord:
        with self._db.read() as conn:
            return load_versions(conn, [version_row(conn, name, version)])[0]

    def latest_version(self, name: str) -> VersionRecord:
        with self._db.read() as conn:
            model = model_row(conn, name)
            if not model.latest_version:
                raise VersionNotFound(f"model {name!r} has no versions yet", model=name)
            return load_versions(conn, [version_row(conn, name, model.latest_version)])[0]

    def list_versions(
        self,
        name: str,
        *,
        tag: TagFilter | None,
        metric: MetricFilter | None,
        limit: int,
        offset: int,
    ) -> Page[VersionRecord]:
        with self._db.read() as conn:
            model = model_row(conn, name)
            conditions: list[sa.ColumnElement[bool]] = [versions.c.model_id == model.id]
            if tag is not None:
                tagged = sa.select(version_tags.c.version_id).where(version_tags.c.key == tag.key)
                if tag.value is not None:
                    tagged = tagged.where(version_tags.c.value == tag.value)
                conditions.append(versions.c.id.in_(tagged))
            if metric is not None:
                measured = sa.select(version_metrics.c.version_id).where(
                    version_metrics.c.key == metric.key,
                    _compare(version_metrics.c.value, metric.op, metric.value),
                )
                conditions.append(versions.c.id.in_(measured))
            total = conn.execute(
                sa.select(sa.func.count()).select_from(versions).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                VERSION_COLUMNS.where(*conditions)
                .order_by(versions.c.number.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return Page(load_versions(conn, rows), total, limit, offset)

    def children(self, name: str, version: int) -> list[VersionRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                VERSION_COLUMNS.where(
                    versions.c.parent_model == name, versions.c.parent_version == version
                ).order_by(models.c.name, versions.c.number)
            ).all()
            return load_versions(conn, rows)

    def set_version_tags(
        self, name: str, version: int, tags: dict[str, str], *, replace: bool, actor: str
    ) -> VersionRecord:
        with self._db.write() as conn:
            model_row(conn, name, lock=True)
            row = version_row(conn, name, version)
            if replace:
                conn.execute(sa.delete(version_tags).where(version_tags.c.version_id == row.id))
            _upsert(conn, version_tags, row.id, tags)
            _audit(
                conn, actor, "version.tags", f"{name}/{version}", {"tags": tags, "replace": replace}
            )
            return load_versions(conn, [row])[0]

    def log_metrics(
        self, name: str, version: int, metrics: dict[str, float], *, actor: str
    ) -> VersionRecord:
        with self._db.write() as conn:
            model_row(conn, name, lock=True)
            row = version_row(conn, name, version)
            _upsert(conn, version_metrics, row.id, metrics)
            _audit(conn, actor, "version.metrics", f"{name}/{version}", {"metrics": metrics})
            return load_versions(conn, [row])[0]

    # --- aliases ------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, *, actor: str) -> AliasRecord:
        with self._db.write() as conn:
            model = model_row(conn, name, lock=True)
            target = version_row(conn, name, version)
            current = conn.execute(
                ALIAS_COLUMNS.where(aliases.c.model_id == model.id, aliases.c.name == alias)
            ).first()
            if current is not None and current.version_id == target.id:
                return alias_record(current)
            now = _now()
            values = {"version_id": target.id, "updated_at": now, "updated_by": actor}
            if current is None:
                conn.execute(sa.insert(aliases).values(model_id=model.id, name=alias, **values))
            else:
                conn.execute(
                    sa.update(aliases)
                    .where(aliases.c.model_id == model.id, aliases.c.name == alias)
                    .values(**values)
                )
            old = None if current is None else current.version
            self._alias_moved(conn, model.id, alias, old, version, now, actor)
            _audit(conn, actor, "alias.set", f"{name}@{alias}", {"from": old, "to": version})
            return alias_record(alias_row(conn, name, alias))

    def get_alias(self, name: str, alias: str) -> AliasRecord:
        with self._db.read() as conn:
            return alias_record(alias_row(conn, name, alias))

    def delete_alias(self, name: str, alias: str, *, actor: str) -> None:
        with self._db.write() as conn:
            model = model_row(conn, name, lock=True)
            current = alias_row(conn, name, alias)
            conn.execute(
                sa.delete(aliases).where(aliases.c.model_id == model.id, aliases.c.name == alias)
            )
            now = _now()
            self._alias_moved(conn, model.id, alias, current.version, None, now, actor)
            _audit(conn, actor, "alias.delete", f"{name}@{alias}", {"from": current.version})

    def _alias_moved(
        self,
        conn: Connection,
        model_id: int,
        alias: str,
        old: int | None,
        new: int | None,
        at: datetime,
        actor: str,
    ) -> None:
        conn.execute(
            sa.insert(alias_history).values(
                model_id=model_id, alias=alias, old_version=old, new_version=new, at=at, actor=actor
            )
        )
        conn.execute(sa.update(models).where(models.c.id == model_id).values(updated_at=at))

    def list_aliases(self, name: str) -> list[AliasRecord]:
        with self._db.read() as conn:
            model = model_row(conn, name)
            rows = conn.execute(
                ALIAS_COLUMNS.where(aliases.c.model_id == model.id).order_by(aliases.c.name)
            ).all()
            return [alias_record(row) for row in rows]

    def alias_history(self, name: str, alias: str | None) -> list[AliasEvent]:
        with self._db.read() as conn:
            model = model_row(conn, name)
            query = sa.select(alias_history).where(alias_history.c.model_id == model.id)
            if alias is not None:
                query = query.where(alias_history.c.alias == alias)
            rows = conn.execute(query.order_by(alias_history.c.id)).all()
            return [
                AliasEvent(name, r.alias, r.old_version, r.new_version, r.at, r.actor) for r in rows
            ]

    # --- audit, gc, health --------------------------------------------------------------------
    def audit(self, *, limit: int, offset: int) -> list[AuditEvent]:
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
            ).all()
            return [
                AuditEvent(r.id, r.at, r.actor, r.action, r.target, dict(r.details)) for r in rows
            ]

    def referenced_blobs(self) -> set[str]:
        with self._db.read() as conn:
            return set(conn.execute(sa.select(version_files.c.sha256).distinct()).scalars())

    def row_counts(self) -> dict[str, int]:
        with self._db.read() as conn:
            return {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in TABLES  # the registry's own
            }

    def close(self) -> None:
        self._engine.dispose()


def _upsert(conn: Connection, table: sa.Table, version_id: int, values: dict[str, Any]) -> None:
    if not values:
        return
    conn.execute(
        sa.delete(table).where(table.c.version_id == version_id, table.c.key.in_(list(values)))
    )
    conn.execute(
        sa.insert(table),
        [{"version_id": version_id, "key": k, "value": v} for k, v in values.items()],
    )


def _audit(
    conn: Connection, actor: str, action: str, target: str, details: dict[str, object]
) -> None:
    conn.execute(
        sa.insert(audit_log).values(
            at=_now(), actor=actor, action=action, target=target, details=details
        )
    )


if TYPE_CHECKING:  # SqlMetadataStore must keep satisfying the protocol
    from ferry.registry.metadata.base import MetadataStore

    _PROTOCOL: type[MetadataStore] = SqlMetadataStore
