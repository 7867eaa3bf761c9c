"""The one ``MetaData`` every layer registers its tables on, and the column types they share.

Each layer owns its tables in its own ``tables.py`` (registry, security, monitoring,
packaging); ``TABLE_MODULES`` names them, so the migrations and the tests can load them all
without ``db`` importing a layer above it. Migrations in ``db/migrations`` create them.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

# the modules that register tables on ``metadata``, lowest layer first
TABLE_MODULES = (
    "ferry.db.leases",
    "ferry.registry.tables",
    "ferry.security.tables",
    "ferry.monitoring.tables",
    "ferry.packaging.tables",
)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_tables() -> sa.MetaData:
    """``metadata`` with every layer's tables registered on it."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return metadata
