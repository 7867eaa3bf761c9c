"""Issue 14: a failed statement on PostgreSQL raises an error whose text holds no value the
caller stored (a 500 once echoed ``[parameters: ('customer-ssn-123',)]``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ferry.db.engine import Connections, create_engine
from ferry.db.migrations import upgrade
from ferry.errors import Conflict, StorageError
from ferry.registry.tables import models
from tests.registry_fixtures import PgFactory

pytestmark = pytest.mark.integration

SECRET = "customer-ssn-123"


def _row(name: str, description: str = "") -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "name": name,
        "description": description,
        "latest_version": 0,
        "created_at": now,
        "updated_at": now,
    }


def test_engine_errors_carry_no_parameter_value(pg_database_factory: PgFactory) -> None:
    url = pg_database_factory()  # its own database: the rows it leaves touch no other test
    upgrade(url)
    engine = create_engine(url)
    db = Connections(engine, "the registry database")
    try:
        with db.write() as conn:
            conn.execute(sa.insert(models).values(_row(SECRET)))
        # a unique violation: PostgreSQL's DETAIL quotes the key's value
        with pytest.raises(Conflict) as conflict, db.write() as conn:
            conn.execute(sa.insert(models).values(_row(SECRET)))
        # a value too long for its column
        with pytest.raises(StorageError) as too_long, db.write() as conn:
            conn.execute(sa.insert(models).values(_row(SECRET * 20)))
        # the raw SQLAlchemy error too: the engine hides its parameters
        with pytest.raises(sa.exc.IntegrityError) as raw, engine.begin() as conn:
            conn.execute(sa.insert(models).values(_row(SECRET)))
    finally:
        engine.dispose()
    assert "duplicate key" in conflict.value.message
    assert "too long" in too_long.value.message
    for exc in (conflict.value, too_long.value):
        assert SECRET not in str(exc)
        assert SECRET not in repr(exc.details)
        assert "INSERT" not in str(exc)
    assert "parameters hidden" in str(raw.value)
    assert SECRET not in str(raw.value).split("DETAIL")[0]
