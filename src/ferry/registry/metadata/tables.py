"""The registry's tables (SQLAlchemy Core). Migrations in registry/migrations create them.

Versions point at their parent by (model name, number) rather than a foreign key, so lineage
can cross models and survives the parent model's deletion. Every write also appends to
``audit_log``, which nothing updates or deletes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _model_fk() -> sa.ForeignKey:
    return sa.ForeignKey("models.id", ondelete="CASCADE")


def _version_fk() -> sa.ForeignKey:
    return sa.ForeignKey("versions.id", ondelete="CASCADE")


models = sa.Table(
    "models",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("latest_version", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("name"),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model_id", BigId, _model_fk(), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_id", BigId, _model_fk(), nullable=False),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("flavor", sa.String(64), nullable=False),
    sa.Column("signature", sa.JSON(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("requirements", sa.JSON(), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("manifest", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("parent_model", sa.String(128), nullable=True),
    sa.Column("parent_version", sa.Integer(), nullable=True),
    sa.Column("data_fingerprint", sa.String(256), nullable=True),
    sa.Column("data_rows", sa.BigInteger(), nullable=True),
    sa.Column("code_ref", sa.String(256), nullable=True),
    sa.Column("run_id", sa.String(256), nullable=True),
    sa.UniqueConstraint("model_id", "number"),
    sa.UniqueConstraint("model_id", "sha256"),
    sa.Index(None, "parent_model", "parent_version"),
)

version_files = sa.Table(
    "version_files",
    metadata,
    sa.Column("version_id", BigId, _version_fk(), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Index(None, "sha256"),
)

version_tags = sa.Table(
    "version_tags",
    metadata,
    sa.Column("version_id", BigId, _version_fk(), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Index(None, "key"),
)

version_metrics = sa.Table(
    "version_metrics",
    metadata,
    sa.Column("version_id", BigId, _version_fk(), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Double(), nullable=False),
    sa.Index(None, "key", "value"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", BigId, _model_fk(), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version_id", BigId, _version_fk(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_id", BigId, _model_fk(), nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("old_version", sa.Integer(), nullable=True),
    sa.Column("new_version", sa.Integer(), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Index(None, "model_id", "alias"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
)

# image builds (ferry.packaging.jobs): ``active`` is "model/version" while a build is queued or
# running and NULL afterwards, so the unique constraint allows one live build per version
builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("active", sa.String(160), nullable=True),
    sa.Column("options", sa.JSON(), nullable=False),
    sa.Column("image", sa.String(512), nullable=True),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("pushed", sa.String(512), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("log", sa.Text(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("active"),
    sa.Index(None, "model", "version"),
)

# --- security (ferry.security): API keys, usage metering, quota counters ---------------------
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the public part of the key
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),  # HMAC-SHA256, never the secret
    sa.Column("scopes", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("requests_per_minute", sa.Integer(), nullable=True),
    sa.Column("rows_per_day", sa.BigInteger(), nullable=True),
    sa.Index(None, "name"),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("principal", sa.String(256), primary_key=True),  # key id, jwt:<sub> or "-"
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("requests", sa.BigInteger(), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("errors", sa.BigInteger(), nullable=False),
    sa.Column("compute_ms", sa.Double(), nullable=False),
    sa.Index(None, "principal", "day"),
)

quota_counters = sa.Table(
    "quota_counters",
    metadata,
    sa.Column("name", sa.String(320), primary_key=True),  # kind:key:window
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),  # unix seconds; swept after
    sa.Index(None, "expires_at"),
)

# the prediction log, in chunks: each write of a worker's log thread stores the requests it
# gathered for one model version as one row (see monitoring/predlog/store.py). Times are unix
# microseconds; low_key/high_key bound the chunk's time-ordered request keys (Ferry's own
# ids), which find a request by id; NULL when it holds only clients' ids
prediction_chunks = sa.Table(
    "prediction_chunks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("requests", sa.Integer(), nullable=False),
    sa.Column("first_us", sa.BigInteger(), nullable=False),
    sa.Column("last_us", sa.BigInteger(), nullable=False),
    sa.Column("low_key", sa.BigInteger(), nullable=True),
    sa.Column("high_key", sa.BigInteger(), nullable=True),
    sa.Column("meta", sa.Text(), nullable=False),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Index(None, "low_key"),
    sa.Index(None, "model", "last_us"),
    sa.Index(None, "last_us"),
)

# the chunk of each request whose id a client chose (X-Request-ID, hashed to request_key):
# such keys are random, so no chunk's key range can hold them
prediction_ids = sa.Table(
    "prediction_ids",
    metadata,
    sa.Column("request_key", sa.BigInteger(), nullable=False),
    sa.Column("chunk_id", BigId, nullable=False),
    sa.Index(None, "request_key"),
    sa.Index(None, "chunk_id"),
)

# ground truth sent back for logged requests (POST /v1/models/{name}/feedback); the latest
# feedback for a request id replaces the earlier one
prediction_feedback = sa.Table(
    "prediction_feedback",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("truth", sa.Text(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index(None, "model", "at"),
)

# monitoring (migration 0003): a version's reference profile and its drift reports over time
reference_profiles = sa.Table(
    "reference_profiles",
    metadata,
    sa.Column("version_id", BigId, _version_fk(), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("profile", sa.JSON(), nullable=False),
)

drift_results = sa.Table(
    "drift_results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("version_id", BigId, _version_fk(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=True),
    sa.Column("window_end", UTCDateTime(), nullable=True),
    sa.Column("live_rows", sa.BigInteger(), nullable=False),
    sa.Column("drifted", sa.Boolean(), nullable=False),
    sa.Column("drifted_features", sa.Integer(), nullable=False),
    sa.Column("report", sa.JSON(), nullable=False),
    sa.Index(None, "version_id", "created_at"),
)

# telemetry bundles imported from customer sites (ferry telemetry import)
telemetry_imports = sa.Table(
    "telemetry_imports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site", sa.String(128), nullable=False),
    sa.Column("bundle_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("imported_at", UTCDateTime(), nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("until", UTCDateTime(), nullable=False),
    sa.Column("summary", sa.JSON(), nullable=False),
    sa.UniqueConstraint("bundle_sha256"),
    sa.Index(None, "site", "created_at"),
)

ALL_TABLES = (
    models,
    model_tags,
    versions,
    version_files,
    version_tags,
    version_metrics,
    aliases,
    alias_history,
    audit_log,
    builds,
    api_keys,
    usage,
    quota_counters,
    prediction_chunks,
    prediction_ids,
    prediction_feedback,
    reference_profiles,
    drift_results,
    telemetry_imports,
)
