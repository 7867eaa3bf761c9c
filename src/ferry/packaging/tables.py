"""The packaging layer's table: image builds (``ferry.packaging.jobs``)."""

from __future__ import annotations

import sqlalchemy as sa

from ferry.db.schema import UTCDateTime, metadata

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

TABLES = (builds,)
