"""Issue 14: a request that hits a database failure answers 500 with a fixed message (the
error code and the request id), never the SQL or a value the caller sent; the server's log
has the database's own words under that request id.

A real ``ferry server`` on a PostgreSQL database of the test's own; the database fails
honestly: a trigger the test adds (after the server migrated it) refuses every write to the
models table, as a constraint added by a DBA or a failing extension would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.conftest import start_ferry, stop_server
from tests.registry_fixtures import PgFactory

pytestmark = pytest.mark.integration

SECRET = "customer-ssn-123"
TRIGGER_TEXT = "refused by the test trigger"
REFUSE_WRITES = f"""
CREATE FUNCTION ferry_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{TRIGGER_TEXT} on %', TG_TABLE_NAME;
END $$;
CREATE TRIGGER ferry_test_refuse BEFORE INSERT OR UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION ferry_test_refuse();
"""
# what a 500 body must not hold: the statement, the table, the driver, the database
INTERNALS = ("INSERT", "UPDATE", "SELECT", "[SQL", "models (", "psycopg", "postgresql", "trigger")


def test_database_failure_answers_a_fixed_500_and_logs_the_cause(
    pg_database_factory: PgFactory, tmp_path: Path
) -> None:
    url = pg_database_factory()
    log = tmp_path / "server.log"
    env = {
        "FERRY_HOME": str(tmp_path / "home"),
        "FERRY_DATABASE_URL": url,
        "FERRY_ARTIFACTS": str(tmp_path / "artifacts"),
        "FERRY_LOG_FORMAT": "json",
        "FERRY_LOG_LEVEL": "INFO",
    }
    process, base = start_ferry(["server", "--workers", "1"], log=log, env=env)
    try:
        created = httpx.post(
            f"{base}/api/v1/models", json={"name": "iris", "description": "flowers"}, timeout=30
        )
        assert created.status_code == 201, created.text
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(REFUSE_WRITES)  # type: ignore[arg-type]  # a literal script
        answers = [
            # an INSERT carrying the caller's value
            httpx.post(
                f"{base}/api/v1/models",
                json={"name": "wine", "description": SECRET},
                timeout=30,
            ),
            # an UPDATE carrying it
            httpx.patch(f"{base}/api/v1/models/iris", json={"description": SECRET}, timeout=30),
        ]
        # reads still work: the failure was the write's, the server stays up
        assert httpx.get(f"{base}/api/v1/models/iris", timeout=30).status_code == 200
    finally:
        stop_server(process)

    records = [json.loads(line) for line in log.read_text().splitlines()]
    for answer in answers:
        assert answer.status_code == 500, answer.text
        request_id = answer.headers["x-request-id"]
        error = answer.json()["error"]
        assert error["details"] == {"request_id": request_id}
        assert request_id in error["message"]
        assert SECRET not in answer.text
        for internal in INTERNALS:
            assert internal not in answer.text, (internal, answer.text)
        # the log holds the detail, under the id the caller was given
        causes = [
            r
            for r in records
            if r["request_id"] == request_id
            and r["level"] == "ERROR"
            and r["logger"] != "ferry.access"
        ]
        assert causes, [r for r in records if r["request_id"] == request_id]
        detail = " ".join(str(r.get("message", "")) + str(r.get("exc", "")) for r in causes)
        assert TRIGGER_TEXT in detail, detail
    # the engine hides parameters: not even the log has the caller's value
    assert SECRET not in log.read_text()
