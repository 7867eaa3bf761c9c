"""Prediction log: every answered request (inputs, outputs as JSON) and the feedback for it.

Revision ID: 0003_predlog
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_predlog"
down_revision = "0002_security"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("request_key", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("latency", sa.Double(), nullable=False),
        sa.Column("principal", sa.String(256), nullable=True),
        sa.Column("at", When, nullable=False),
        sa.Column("inputs", sa.Text(), nullable=True),
        sa.Column("outputs", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_request_key", "predictions", ["request_key"])
    op.create_index("ix_predictions_model_at", "predictions", ["model", "at"])
    op.create_table(
        "prediction_feedback",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("truth", sa.Text(), nullable=False),
        sa.Column("at", When, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_prediction_feedback"),
    )
    op.create_index("ix_prediction_feedback_model_at", "prediction_feedback", ["model", "at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_feedback_model_at", table_name="prediction_feedback")
    op.drop_table("prediction_feedback")
    op.drop_index("ix_predictions_model_at", table_name="predictions")
    op.drop_index("ix_predictions_request_key", table_name="predictions")
    op.drop_table("predictions")
