"""Prediction log in chunks: many requests a row instead of one, the old rows carried over.

Each old row becomes a chunk of one request (its key, hashed or not, as both bounds: found by
the key range like any chunk), so every logged request is still found by id, listed, replayed
and joined with its feedback. The downgrade expands chunks back into rows.

Revision ID: 0005_predlog_chunks
Revises: 0004_builds
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_predlog_chunks"
down_revision = "0004_builds"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
PAGE = 1000

# a migration keeps its own copies of the tables it moves rows between (never the live ones)
_old = sa.table(
    "predictions",
    sa.column("id", sa.BigInteger()),
    sa.column("request_id", sa.String()),
    sa.column("request_key", sa.BigInteger()),
    sa.column("model", sa.String()),
    sa.column("version", sa.String()),
    sa.column("protocol", sa.String()),
    sa.column("status", sa.Integer()),
    sa.column("error_code", sa.String()),
    sa.column("rows", sa.Integer()),
    sa.column("latency", sa.Double()),
    sa.column("principal", sa.String()),
    sa.column("at", When),
    sa.column("inputs", sa.Text()),
    sa.column("outputs", sa.Text()),
)
_chunks = sa.table(
    "prediction_chunks",
    sa.column("id", sa.BigInteger()),
    sa.column("model", sa.String()),
    sa.column("version", sa.String()),
    sa.column("requests", sa.Integer()),
    sa.column("first_us", sa.BigInteger()),
    sa.column("last_us", sa.BigInteger()),
    sa.column("low_key", sa.BigInteger()),
    sa.column("high_key", sa.BigInteger()),
    sa.column("meta", sa.Text()),
    sa.column("data", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "prediction_chunks",
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
        sa.PrimaryKeyConstraint("id", name="pk_prediction_chunks"),
    )
    op.create_index("ix_prediction_chunks_low_key", "prediction_chunks", ["low_key"])
    op.create_index("ix_prediction_chunks_model_last_us", "prediction_chunks", ["model", "last_us"])
    op.create_index("ix_prediction_chunks_last_us", "prediction_chunks", ["last_us"])
    op.create_table(
        "prediction_ids",
        sa.Column("request_key", sa.BigInteger(), nullable=False),
        sa.Column("chunk_id", BigId, nullable=False),
    )
    op.create_index("ix_prediction_ids_request_key", "prediction_ids", ["request_key"])
    op.create_index("ix_prediction_ids_chunk_id", "prediction_ids", ["chunk_id"])
    bind = op.get_bind()
    after = None
    while True:
        query = sa.select(_old).order_by(_old.c.id).limit(PAGE)
        if after is not None:
            query = query.where(_old.c.id > after)
        rows = bind.execute(query).mappings().all()
        if not rows:
            break
        bind.execute(sa.insert(_chunks), [_chunk_of(row) for row in rows])
        after = rows[-1]["id"]
    op.drop_index("ix_predictions_model_at", table_name="predictions")
    op.drop_index("ix_predictions_request_key", table_name="predictions")
    op.drop_table("predictions")


def _chunk_of(row: Any) -> dict[str, Any]:
    at_us = _micros(row["at"])
    meta = [
        row["request_id"], row["protocol"], row["status"], row["error_code"], row["rows"],
        row["latency"], row["principal"], at_us,
    ]  # fmt: skip
    # inputs and outputs are JSON text already: embedded as they are
    data = f"[[{row['inputs'] or 'null'},{row['outputs'] or 'null'}]]"
    return {
        "model": row["model"],
        "version": row["version"],
        "requests": 1,
        "first_us": at_us,
        "last_us": at_us,
        "low_key": row["request_key"],
        "high_key": row["request_key"],
        "meta": json.dumps([meta], separators=(",", ":")),
        "data": data,
    }


def _micros(at: datetime | str) -> int:
    when = datetime.fromisoformat(at) if isinstance(at, str) else at  # SQLite: naive UTC text
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def downgrade() -> None:
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
    bind = op.get_bind()
    after = None
    while True:
        query = sa.select(_chunks).order_by(_chunks.c.id).limit(PAGE // 10)
        if after is not None:
            query = query.where(_chunks.c.id > after)
        chunks = bind.execute(query).mappings().all()
        if not chunks:
            break
        rows = [row for chunk in chunks for row in _rows_of(chunk)]
        if rows:
            bind.execute(sa.insert(_old), rows)
        after = chunks[-1]["id"]
    op.drop_index("ix_prediction_ids_chunk_id", table_name="prediction_ids")
    op.drop_index("ix_prediction_ids_request_key", table_name="prediction_ids")
    op.drop_table("prediction_ids")
    op.drop_index("ix_prediction_chunks_last_us", table_name="prediction_chunks")
    op.drop_index("ix_prediction_chunks_model_last_us", table_name="prediction_chunks")
    op.drop_index("ix_prediction_chunks_low_key", table_name="prediction_chunks")
    op.drop_table("prediction_chunks")


def _rows_of(chunk: Any) -> list[dict[str, Any]]:
    rows = []
    metas, datas = json.loads(chunk["meta"]), _requests(json.loads(chunk["data"]))
    for meta, (inputs, outputs) in zip(metas, datas, strict=True):
        # a ninth item, the client's own request id, has no column in the old table
        request_id, protocol, status, error_code, n_rows, latency, principal, at_us = meta[:8]
        rows.append(
            {
                "request_id": request_id,
                "request_key": _key(request_id),
                "model": chunk["model"],
                "version": chunk["version"],
                "protocol": protocol,
                "status": status,
                "error_code": error_code,
                "rows": n_rows,
                "latency": latency,
                "principal": principal,
                "at": datetime.fromtimestamp(at_us / 1_000_000, UTC),
                "inputs": None if inputs is None else json.dumps(inputs),
                "outputs": None if outputs is None else json.dumps(outputs),
            }
        )
    return rows


def _requests(data: Any) -> list[list[Any]]:
    """[inputs, outputs] per request, the matrices' rows given back to their requests (as
    ferry.monitoring.predlog.codec.stored_requests)."""
    if isinstance(data, list):
        return data
    taken = [0] * len(data["matrices"])
    requests = []
    for inputs, outputs in data["requests"]:
        if isinstance(inputs, list):
            index, n = inputs
            matrix = data["matrices"][index]
            rows = matrix["data"][taken[index] : taken[index] + n]
            taken[index] += n
            inputs = {"rows": {"columns": matrix["columns"], "data": rows}}
        requests.append([inputs, outputs])
    return requests


def _key(request_id: str) -> int:
    """The key the old table indexed (as ferry.monitoring.predlog.codec.request_key)."""
    if len(request_id) == 32 and request_id[12] == "7":
        try:
            key = int(request_id[:16], 16)
        except ValueError:
            key = -1
        if 0 <= key < 1 << 63:
            return key
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
