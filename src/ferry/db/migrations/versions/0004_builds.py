"""Image builds: one row per build job, its status and log.

Revision ID: 0004_builds
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_builds"
down_revision = "0003_monitoring"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column("id", sa.String(32), nullable=False),
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
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("finished_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_builds"),
        sa.UniqueConstraint("active", name="uq_builds_active"),
    )
    op.create_index("ix_builds_model_version", "builds", ["model", "version"])


def downgrade() -> None:
    op.drop_index("ix_builds_model_version", table_name="builds")
    op.drop_table("builds")
