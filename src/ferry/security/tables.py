"""The security layer's tables: API keys and usage metering, on the one MetaData.

``quota_counters`` (the quota windows) lives in ``ferry.db.leases``: the leases and cooldowns
of every layer are rows of it too, and the quota sweep deletes the expired ones of both.
"""

from __future__ import annotations

import sqlalchemy as sa

from ferry.db.leases import quota_counters
from ferry.db.schema import UTCDateTime, metadata

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

TABLES = (api_keys, usage, quota_counters)

__all__ = ["TABLES", "api_keys", "quota_counters", "usage"]
