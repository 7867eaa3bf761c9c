"""The registry's tables (SQLAlchemy Core), on the one MetaData of ``ferry.db.schema``.

Versions point at their parent by (model name, number) rather than a foreign key, so lineage
can cross models and survives the parent model's deletion. Every write also appends to
``audit_log``, which nothing updates or deletes.
"""

from __future__ import annotations

import sqlalchemy as sa

from ferry.db.schema import BigId, UTCDateTime, metadata


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

TABLES = (
    models,
    model_tags,
    versions,
    version_files,
    version_tags,
    version_metrics,
    aliases,
    alias_history,
    audit_log,
)
