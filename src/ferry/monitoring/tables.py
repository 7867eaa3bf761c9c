"""The monitoring layer's tables: the prediction log, feedback, reference profiles, drift
results and telemetry imports, on the one MetaData. Profiles and drift results hang off a
registry version row (deleted with it).
"""

from __future__ import annotations

import sqlalchemy as sa

from ferry.db.schema import BigId, UTCDateTime, metadata
from ferry.registry.tables import versions

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
    sa.Column(
        "version_id", BigId, sa.ForeignKey(versions.c.id, ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("profile", sa.JSON(), nullable=False),
)

drift_results = sa.Table(
    "drift_results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "version_id", BigId, sa.ForeignKey(versions.c.id, ondelete="CASCADE"), nullable=False
    ),
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

TABLES = (
    prediction_chunks,
    prediction_ids,
    prediction_feedback,
    reference_profiles,
    drift_results,
    telemetry_imports,
)
