"""Initial registry schema: models, versions and their files/tags/metrics, aliases, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("name", name="uq_models_name"),
    )
    op.create_table(
        "model_tags",
        sa.Column("model_id", BigId, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "key", name="pk_model_tags"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_model_tags_model_id_models", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_id", BigId, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("flavor", sa.String(64), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("parent_model", sa.String(128), nullable=True),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("data_fingerprint", sa.String(256), nullable=True),
        sa.Column("data_rows", sa.BigInteger(), nullable=True),
        sa.Column("code_ref", sa.String(256), nullable=True),
        sa.Column("run_id", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_versions_model_id_models", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("model_id", "number", name="uq_versions_model_id_number"),
        sa.UniqueConstraint("model_id", "sha256", name="uq_versions_model_id_sha256"),
    )
    op.create_index(
        "ix_versions_parent_model_parent_version", "versions", ["parent_model", "parent_version"]
    )
    op.create_table(
        "version_files",
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "path", name="pk_version_files"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name="fk_version_files_version_id_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_version_files_sha256", "version_files", ["sha256"])
    op.create_table(
        "version_tags",
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_version_tags"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name="fk_version_tags_version_id_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_version_tags_key", "version_tags", ["key"])
    op.create_table(
        "version_metrics",
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_version_metrics"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name="fk_version_metrics_version_id_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_version_metrics_key_value", "version_metrics", ["key", "value"])
    op.create_table(
        "aliases",
        sa.Column("model_id", BigId, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "name", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_aliases_model_id_models", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name="fk_aliases_version_id_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_id", BigId, nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("old_version", sa.Integer(), nullable=True),
        sa.Column("new_version", sa.Integer(), nullable=True),
        sa.Column("at", When, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alias_history"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name="fk_alias_history_model_id_models",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_alias_history_model_id_alias", "alias_history", ["model_id", "alias"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", When, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    _append_only("audit_log")


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on ``table`` in the database itself."""
    message = f"{table} is append-only"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def downgrade() -> None:
    for table in (
        "audit_log",
        "alias_history",
        "aliases",
        "version_metrics",
        "version_tags",
        "version_files",
        "versions",
        "model_tags",
        "models",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
