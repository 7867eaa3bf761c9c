"""Alembic environment: runs on the connection that ferry.registry.migrations.upgrade passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ferry.registry.metadata.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run registry migrations through ferry.registry.migrations.upgrade(url) (ferry db upgrade)"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
