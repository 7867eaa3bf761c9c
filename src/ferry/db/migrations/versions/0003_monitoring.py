"""Monitoring: reference profiles and drift results per version, imported telemetry bundles.

Revision ID: 0003_monitoring
Revises: 0003_predlog
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_monitoring"
down_revision = "0003_predlog"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def _version_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["version_id"],
        ["versions.id"],
        name=f"fk_{table}_version_id_versions",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "reference_profiles",
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", name="pk_reference_profiles"),
        _version_fk("reference_profiles"),
    )
    op.create_table(
        "drift_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("window_start", When, nullable=True),
        sa.Column("window_end", When, nullable=True),
        sa.Column("live_rows", sa.BigInteger(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("drifted_features", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_results"),
        _version_fk("drift_results"),
    )
    op.create_index(
        "ix_drift_results_version_id_created_at", "drift_results", ["version_id", "created_at"]
    )
    op.create_table(
        "telemetry_imports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("bundle_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("imported_at", When, nullable=False),
        sa.Column("since", When, nullable=False),
        sa.Column("until", When, nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry_imports"),
        sa.UniqueConstraint("bundle_sha256", name="uq_telemetry_imports_bundle_sha256"),
    )
    op.create_index(
        "ix_telemetry_imports_site_created_at", "telemetry_imports", ["site", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_telemetry_imports_site_created_at", "telemetry_imports")
    op.drop_table("telemetry_imports")
    op.drop_index("ix_drift_results_version_id_created_at", "drift_results")
    op.drop_table("drift_results")
    op.drop_table("reference_profiles")
