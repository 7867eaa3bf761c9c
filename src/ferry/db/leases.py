"""Leases and claims in the database: who runs a job, and what was done recently.

Several processes share one database: the workers of a ``ferry server``, and the
replicas of it on other hosts over PostgreSQL. Two things must happen once among them:

- a lease (``hold_lease``): the scheduled drift job runs in the one process that holds
  ``lease:drift-job``; the holder renews it every round, and another process takes it over
  only after it expired (the holder died or hung);
- a cooldown (``claim_once``): an alert is posted by the first process that claims its key,
  and not again by anyone until the claim expires.

Both are one row of ``quota_counters`` (``name`` is the key, ``count`` the holder's id,
``expires_at`` unix seconds; the quota sweep deletes expired rows) written by one atomic
upsert that changes the row only when it expired or is already ours: SQLite and PostgreSQL
both answer ``RETURNING`` with no row when the ``ON CONFLICT ... WHERE`` condition fails.
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ferry.db.engine import is_postgres, write_transaction
from ferry.db.schema import metadata

# kind:key:window -> a count until expires_at: security's quota windows, and the leases and
# cooldowns below (count: the holder's id)
quota_counters = sa.Table(
    "quota_counters",
    metadata,
    sa.Column("name", sa.String(320), primary_key=True),  # kind:key:window
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),  # unix seconds; swept after
    sa.Index(None, "expires_at"),
)


def new_holder() -> int:
    """A random id for one process (or one claim): positive and fits a BIGINT."""
    return secrets.randbits(62) + 1


def hold_lease(engine: Engine, name: str, holder: int, ttl: float) -> bool:
    """Take or renew lease ``name`` for ``holder`` for ``ttl`` seconds; False while another
    holder's lease has not expired."""
    now = time.time()
    with write_transaction(engine) as conn:
        if is_postgres(conn):
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        statement = insert(quota_counters).values(name=name, count=holder, expires_at=now + ttl)
        statement = statement.on_conflict_do_update(
            index_elements=[quota_counters.c.name],
            set_={"count": statement.excluded.count, "expires_at": statement.excluded.expires_at},
            where=(quota_counters.c.expires_at < now) | (quota_counters.c.count == holder),
        )
        row = conn.execute(statement.returning(quota_counters.c.count)).first()
    return row is not None and int(row[0]) == holder


def claim_once(engine: Engine, name: str, ttl: float) -> bool:
    """True for the first caller of ``name`` (in any process), then False for ``ttl`` seconds."""
    return hold_lease(engine, name, new_holder(), ttl)


def release_lease(engine: Engine, name: str, holder: int) -> None:
    """Give lease ``name`` up, if ``holder`` holds it (a stopping process)."""
    with write_transaction(engine) as conn:
        conn.execute(
            sa.delete(quota_counters).where(
                quota_counters.c.name == name, quota_counters.c.count == holder
            )
        )
