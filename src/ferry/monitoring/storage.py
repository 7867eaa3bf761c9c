"""Monitoring rows: reference profiles, drift results, telemetry, in monitoring's own
``Database`` (opened from settings or a URL; it never borrows the registry's engine).

Profiles and drift results hang off a version row (deleted with it); telemetry imports are
keyed by the site that sent them. The tables are created by migration 0003_monitoring.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ferry.config.settings import Settings
from ferry.db.database import Database
from ferry.db.engine import Connections
from ferry.errors import (
    DriftReportNotFound,
    ProfileNotFound,
    VersionNotFound,
)
from ferry.monitoring.drift import DriftReport
from ferry.monitoring.profile import ReferenceProfile
from ferry.monitoring.tables import drift_results, reference_profiles, telemetry_imports
from ferry.registry.names import MAX_VERSION
from ferry.registry.tables import models, versions

MAX_ROW_ID = 2**63 - 1  # the id columns are 64-bit; a larger number overflows the driver


@dataclass(frozen=True, slots=True)
class DriftRecord:
    id: int
    model: str
    version: int
    report: DriftReport


@dataclass(frozen=True, slots=True)
class TelemetryImport:
    id: int
    site: str
    bundle_sha256: str
    created_at: datetime
    imported_at: datetime
    since: datetime
    until: datetime
    summary: dict[str, Any]


class MonitoringStore:
    """Monitoring's tables over its own ``Database`` (lazily opened, fork-safe): one store
    per app or CLI command, shared by its routes, jobs and gauges."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @classmethod
    def open(cls, database_url: str) -> MonitoringStore:
        """Over its own engine (the database is migrated by ``ferry db upgrade``)."""
        return cls(Database(database_url, "the monitoring tables"))

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringStore:
        from ferry.config.paths import database_url

        return cls.open(database_url(settings))

    @property
    def engine(self) -> Engine:
        """The engine (the prediction log and the leases share it)."""
        return self.database.engine

    @property
    def _db(self) -> Connections:
        return Connections(self.database.engine, self.database.what)

    def migrate(self) -> None:
        """Bring the database to the newest schema (what ``ferry db upgrade`` does)."""
        self.database.migrate()

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> MonitoringStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- profiles ---------------------------------------------------------------------------
    def save_profile(self, model: str, version: int, profile: ReferenceProfile) -> None:
        """Store (or replace) the version's reference profile."""
        with self._db.write() as conn:
            version_id = _version_id(conn, model, version)
            conn.execute(
                sa.delete(reference_profiles).where(reference_profiles.c.version_id == version_id)
            )
            conn.execute(
                sa.insert(reference_profiles).values(
                    version_id=version_id,
                    source=profile.source[:64],
                    rows=profile.rows,
                    created_at=profile.created_at,
                    profile=profile.model_dump(mode="json"),
                )
            )

    def get_profile(self, model: str, version: int) -> ReferenceProfile:
        with self._db.read() as conn:
            version_id = _version_id(conn, model, version)
            row = conn.execute(
                sa.select(reference_profiles.c.profile).where(
                    reference_profiles.c.version_id == version_id
                )
            ).first()
        if row is None:
            raise ProfileNotFound(
                f"{model} version {version} has no reference profile: register it with "
                "--reference data.csv (or an input example)",
                model=model,
                version=version,
            )
        return ReferenceProfile.model_validate(row.profile)

    def profiled_versions(self) -> list[tuple[str, int]]:
        """Every (model, version) that has a reference profile."""
        query = (
            sa.select(models.c.name, versions.c.number)
            .join(versions, versions.c.model_id == models.c.id)
            .join(reference_profiles, reference_profiles.c.version_id == versions.c.id)
            .order_by(models.c.name, versions.c.number)
        )
        with self._db.read() as conn:
            return [(str(name), int(number)) for name, number in conn.execute(query)]

    # --- drift ------------------------------------------------------------------------------
    def add_drift(self, report: DriftReport) -> int:
        if report.version is None:
            raise ValueError("a stored drift report names its version")
        with self._db.write() as conn:
            version_id = _version_id(conn, report.model, report.version)
            result = conn.execute(
                sa.insert(drift_results).values(
                    version_id=version_id,
                    created_at=report.created_at,
                    window_start=report.window_start,
                    window_end=report.window_end,
                    live_rows=report.live_rows,
                    drifted=report.drifted,
                    drifted_features=len(report.drifted_features),
                    report=report.model_dump(mode="json"),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def get_drift(self, report_id: int) -> DriftRecord:
        if not 1 <= report_id <= MAX_ROW_ID:
            raise DriftReportNotFound(f"no drift report {report_id}", id=report_id)
        with self._db.read() as conn:
            row = conn.execute(_drift_query().where(drift_results.c.id == report_id)).first()
        if row is None:
            raise DriftReportNotFound(f"no drift report {report_id}", id=report_id)
        return _drift_record(row)

    def drift_history(
        self,
        model: str | None = None,
        version: int | None = None,
        *,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[DriftRecord]:
        """Drift reports, newest first."""
        query = _drift_query()
        if model is not None:
            query = query.where(models.c.name == model)
        if version is not None:
            query = query.where(versions.c.number == version)
        if since is not None:
            query = query.where(drift_results.c.created_at >= since)
        query = query.order_by(drift_results.c.created_at.desc(), drift_results.c.id.desc())
        with self._db.read() as conn:
            return [_drift_record(row) for row in conn.execute(query.limit(limit))]

    def latest_drift(self) -> list[DriftRecord]:
        """The newest report of every version that has one (what the gauges show)."""
        newest = (
            sa.select(sa.func.max(drift_results.c.id))
            .group_by(drift_results.c.version_id)
            .scalar_subquery()
        )
        query = _drift_query().where(drift_results.c.id.in_(newest))
        with self._db.read() as conn:
            return [_drift_record(row) for row in conn.execute(query)]

    # --- telemetry --------------------------------------------------------------------------
    def add_telemetry(
        self,
        *,
        site: str,
        bundle_sha256: str,
        created_at: datetime,
        since: datetime,
        until: datetime,
        summary: dict[str, Any],
    ) -> tuple[TelemetryImport, bool]:
        """Record an imported bundle; the same bundle again returns the first import."""
        with self._db.write() as conn:
            existing = conn.execute(
                sa.select(telemetry_imports).where(
                    telemetry_imports.c.bundle_sha256 == bundle_sha256
                )
            ).first()
            if existing is not None:
                return _telemetry(existing), False
            record = TelemetryImport(
                id=0,
                site=site,
                bundle_sha256=bundle_sha256,
                created_at=created_at,
                imported_at=datetime.now(UTC),
                since=since,
                until=until,
                summary=summary,
            )
            values = {k: getattr(record, k) for k in TelemetryImport.__slots__ if k != "id"}
            key = conn.execute(sa.insert(telemetry_imports).values(**values)).inserted_primary_key
            assert key is not None
            return replace(record, id=int(key[0])), True

    def telemetry(self, site: str | None = None, *, limit: int = 100) -> list[TelemetryImport]:
        """Imported bundles, newest first."""
        query = sa.select(telemetry_imports)
        if site is not None:
            query = query.where(telemetry_imports.c.site == site)
        query = query.order_by(telemetry_imports.c.created_at.desc()).limit(limit)
        with self._db.read() as conn:
            return [_telemetry(row) for row in conn.execute(query)]

    def latest_telemetry(self) -> list[tuple[TelemetryImport, int]]:
        """Every site's newest imported bundle, with how many bundles it sent; the site heard
        from last first."""
        imports = telemetry_imports
        newest = (
            sa.select(imports.c.site, sa.func.max(imports.c.created_at).label("created_at"))
            .group_by(imports.c.site)
            .subquery()
        )
        query = (
            sa.select(imports)
            .join(
                newest,
                (imports.c.site == newest.c.site) & (imports.c.created_at == newest.c.created_at),
            )
            .order_by(imports.c.site, imports.c.id.desc())
        )
        counts = sa.select(imports.c.site, sa.func.count()).group_by(imports.c.site)
        with self._db.read() as conn:
            bundles = {str(site): int(n) for site, n in conn.execute(counts)}
            latest: dict[str, TelemetryImport] = {}
            for row in conn.execute(query):
                latest.setdefault(row.site, _telemetry(row))
        newest_first = sorted(latest.values(), key=lambda i: i.created_at, reverse=True)
        return [(item, bundles[item.site]) for item in newest_first]


def _version_id(conn: Connection, model: str, version: int) -> int:
    if not 1 <= version <= MAX_VERSION:
        raise VersionNotFound(f"{model} has no version {version}", model=model, version=version)
    found = conn.execute(
        sa.select(versions.c.id)
        .join(models, models.c.id == versions.c.model_id)
        .where(models.c.name == model, versions.c.number == version)
    ).scalar()
    if found is None:
        raise VersionNotFound(f"{model} has no version {version}", model=model, version=version)
    return int(found)


def _drift_query() -> sa.Select[Any]:
    return (
        sa.select(drift_results.c.id, models.c.name, versions.c.number, drift_results.c.report)
        .join(versions, versions.c.id == drift_results.c.version_id)
        .join(models, models.c.id == versions.c.model_id)
    )


def _drift_record(row: sa.Row[Any]) -> DriftRecord:
    report = DriftReport.model_validate(row.report)
    # the model may have been renamed since; the row's join is the truth
    report = report.model_copy(update={"model": row.name, "version": row.number})
    return DriftRecord(id=int(row.id), model=row.name, version=int(row.number), report=report)


def _telemetry(row: sa.Row[Any]) -> TelemetryImport:
    return TelemetryImport(
        id=int(row.id),
        site=row.site,
        bundle_sha256=row.bundle_sha256,
        created_at=row.created_at,
        imported_at=row.imported_at,
        since=row.since,
        until=row.until,
        summary=dict(row.summary),
    )
