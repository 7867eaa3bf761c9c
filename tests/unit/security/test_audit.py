"""Refused requests are audited aggregated: one row per minute, action, key id and client
with a count, not one row each (31,753 rows once came from unauthenticated traffic alone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ferry.ids import ANONYMOUS
from ferry.registry.tables import audit_log
from ferry.security.audit import MAX_TALLIES, AuditWriter, Refusal, RefusalTally
from ferry.security.database import SecurityDatabase

PREDICT = "POST /v1/models/iris/predict"


def refusal(actor: str = ANONYMOUS, client: str = "10.0.0.1", reason: str = "missing") -> Refusal:
    return Refusal(actor, "auth.unauthorized", client, PREDICT, reason, 401)


def test_refusals_become_one_row_per_key_id_and_client(security_db: SecurityDatabase) -> None:
    writer = AuditWriter(security_db)
    for i in range(1_000):
        writer.refused(refusal(client=f"10.0.0.{i % 2}", reason="missing"))
    for _ in range(300):
        writer.refused(refusal(actor="0123456789abcdef", reason="invalid"))
    writer.close()
    with security_db.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log)).all()
    assert len(rows) <= 6  # 3 groups, in at most two minutes if the clock turned meanwhile
    assert sum(r.details["count"] for r in rows) == 1_300
    by_actor: dict[str, int] = {}
    for row in rows:
        assert row.action == "auth.unauthorized"
        assert row.target == PREDICT
        by_actor[row.actor] = by_actor.get(row.actor, 0) + row.details["count"]
    assert by_actor == {ANONYMOUS: 1_000, "0123456789abcdef": 300}
    keyed = next(r for r in rows if r.actor == "0123456789abcdef")
    assert keyed.details["reasons"] == {"invalid": keyed.details["count"]}
    assert keyed.details["client"] == "10.0.0.1"


def test_a_window_is_written_once_it_is_over() -> None:
    tally = RefusalTally(window_seconds=60)
    start = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    for second in range(50):
        tally.add(refusal(), at=start + timedelta(seconds=second))
    assert tally.drain(now=start + timedelta(seconds=50)) == []  # the minute is not over
    tally.add(refusal(), at=start + timedelta(seconds=60))  # the next minute
    [row] = tally.drain(now=start + timedelta(seconds=61))
    assert row.details["count"] == 50
    assert row.details["window_start"] == "2026-01-01T12:00:00+00:00"
    [last] = tally.drain(everything=True)
    assert last.details["count"] == 1


def test_distinct_groups_are_bounded() -> None:
    tally = RefusalTally()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for i in range(MAX_TALLIES + 500):
        tally.add(refusal(actor=f"{i:016x}"), at=now)
    rows = tally.drain(everything=True)
    assert len(rows) == MAX_TALLIES + 1
    overflow = next(r for r in rows if r.actor == "*")
    assert overflow.details["count"] == 500
    assert sum(r.details["count"] for r in rows) == MAX_TALLIES + 500
