"""Reading registry rows back as records, a page of rows at a time (one query per table)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ferry.errors import AliasNotFound, ModelNotFound, VersionNotFound
from ferry.model.manifest import FileEntry, Manifest
from ferry.model.signature import Signature
from ferry.registry.records import AliasRecord, Lineage, ModelRecord, VersionRecord
from ferry.registry.tables import (
    aliases,
    model_tags,
    models,
    version_files,
    version_metrics,
    version_tags,
    versions,
)

VERSION_COLUMNS = sa.select(versions, models.c.name.label("model_name")).join(
    models, models.c.id == versions.c.model_id
)
ALIAS_COLUMNS = sa.select(
    aliases, models.c.name.label("model_name"), versions.c.number.label("version")
).select_from(
    aliases.join(models, models.c.id == aliases.c.model_id).join(
        versions, versions.c.id == aliases.c.version_id
    )
)


def model_row(connection: Connection, name: str, *, lock: bool = False) -> Row[tuple[object, ...]]:
    query = sa.select(models).where(models.c.name == name)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise ModelNotFound(f"model {name!r} is not in the registry", model=name)
    return row


def version_row(connection: Connection, name: str, number: int) -> Row[tuple[object, ...]]:
    row = connection.execute(
        VERSION_COLUMNS.where(models.c.name == name, versions.c.number == number)
    ).first()
    if row is None:
        model_row(connection, name)  # ModelNotFound first when the model itself is missing
        raise VersionNotFound(f"model {name!r} has no version {number}", model=name, version=number)
    return row


def alias_row(connection: Connection, name: str, alias: str) -> Row[tuple[object, ...]]:
    row = connection.execute(
        ALIAS_COLUMNS.where(models.c.name == name, aliases.c.name == alias)
    ).first()
    if row is None:
        model_row(connection, name)
        raise AliasNotFound(f"model {name!r} has no alias {alias!r}", model=name, alias=alias)
    return row


def load_models(
    connection: Connection, rows: Sequence[Row[tuple[object, ...]]]
) -> list[ModelRecord]:
    ids = [row.id for row in rows]
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    names: dict[int, dict[str, int]] = defaultdict(dict)
    if ids:
        for tag in connection.execute(
            sa.select(model_tags).where(model_tags.c.model_id.in_(ids)).order_by(model_tags.c.key)
        ):
            tags[tag.model_id][tag.key] = tag.value
        for alias in connection.execute(
            ALIAS_COLUMNS.where(aliases.c.model_id.in_(ids)).order_by(aliases.c.name)
        ):
            names[alias.model_id][alias.name] = alias.version
    return [
        ModelRecord(
            name=row.name,
            description=row.description,
            tags=tags[row.id],
            created_at=row.created_at,
            updated_at=row.updated_at,
            latest_version=row.latest_version or None,
            aliases=names[row.id],
        )
        for row in rows
    ]


def load_versions(
    connection: Connection, rows: Sequence[Row[tuple[object, ...]]]
) -> list[VersionRecord]:
    ids = [row.id for row in rows]
    files: dict[int, list[FileEntry]] = defaultdict(list)
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    if ids:
        for item in connection.execute(
            sa.select(version_files)
            .where(version_files.c.version_id.in_(ids))
            .order_by(version_files.c.path)
        ):
            files[item.version_id].append(
                FileEntry(path=item.path, sha256=item.sha256, size=item.size)
            )
        for tag in connection.execute(
            sa.select(version_tags)
            .where(version_tags.c.version_id.in_(ids))
            .order_by(version_tags.c.key)
        ):
            tags[tag.version_id][tag.key] = tag.value
        for metric in connection.execute(
            sa.select(version_metrics)
            .where(version_metrics.c.version_id.in_(ids))
            .order_by(version_metrics.c.key)
        ):
            metrics[metric.version_id][metric.key] = metric.value
    return [_version(row, files[row.id], tags[row.id], metrics[row.id]) for row in rows]


def _version(
    row: Row[tuple[object, ...]],
    files: list[FileEntry],
    tags: dict[str, str],
    metrics: dict[str, float],
) -> VersionRecord:
    parent = None
    if row.parent_model is not None and row.parent_version is not None:
        parent = (row.parent_model, row.parent_version)
    return VersionRecord(
        model=row.model_name,
        version=row.number,
        sha256=row.sha256,
        flavor=row.flavor,
        signature=Signature.model_validate(row.signature),
        size=row.size,
        requirements=list(row.requirements),
        metrics=metrics,
        params=dict(row.params),
        tags=tags,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        parent=parent,
        lineage=Lineage(
            data_fingerprint=row.data_fingerprint,
            data_rows=row.data_rows,
            code_ref=row.code_ref,
            run_id=row.run_id,
        ),
        files=files,
        manifest=Manifest.model_validate(row.manifest),
    )


def alias_record(row: Row[tuple[object, ...]]) -> AliasRecord:
    return AliasRecord(
        model=row.model_name,
        alias=row.name,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )
