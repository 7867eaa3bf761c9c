"""Alembic environment: runs on the connection that ferry.db.migrations.upgrade passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ferry.db.schema import load_tables

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run database migrations through ferry.db.migrations.upgrade(url) (ferry db upgrade)"
    )
context.configure(
    connection=connection,
    target_metadata=load_tables(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
