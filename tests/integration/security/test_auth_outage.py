"""``ferry server --auth`` through a PostgreSQL outage: a key the worker verified before the
outage keeps predicting (200); a key it never verified, or one the database refused, is not
let in (a retryable 503, never a 200); and a 503 from the registry's storage names no
internals (no database URL, no driver text), only the request id that finds them in the log.

Before: half a second into the outage (FERRY_AUTH_CACHE_SECONDS) every keyed prediction
answered 503, and ``storage_unavailable`` bodies carried ``the registry database at
postgresql://postgres@127.0.0.1:PORT/ferry failed: (psycopg.OperationalError) ...``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ferry.config.settings import Settings
from ferry.registry import Registry
from ferry.security.keys import KeyStore
from tests.integration.conftest import platform_server
from tests.integration.own_postgres import own_postgres

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 4.0
INTERNALS = ("postgres", "127.0.0.1", "psycopg", "OperationalError", "sqlalchemy")


def test_verified_keys_predict_through_a_database_outage(
    tmp_path: Path, iris_bundle: Path, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris_data
    body = {"instances": X.iloc[[0, 60, 120]].to_numpy().tolist()}
    home = tmp_path / "home"
    with own_postgres() as cluster:
        settings = Settings(home=home, database_url=cluster.url)
        with Registry.open(cluster.url, str(tmp_path / "artifacts"), migrate=True) as registry:
            registry.register(iris_bundle, "iris")
        store = KeyStore.from_settings(settings)
        try:
            used, unused, revoked = (
                store.create(name, ["predict:iris", "read"]).token
                for name in ("app", "spare", "gone")
            )
        finally:
            store.database.close()
        env = {
            "FERRY_DATABASE_URL": cluster.url,
            "FERRY_ARTIFACTS": str(tmp_path / "artifacts"),
            "FERRY_AUTH": "required",
        }
        log = tmp_path / "server.log"
        with platform_server(home, "--workers", "1", log=log, env=env) as url:

            def predict(token: str) -> httpx.Response:
                return httpx.post(
                    f"{url}/v1/models/iris/predict",
                    json=body,
                    headers={"x-api-key": token},
                    timeout=30,
                )

            assert predict(used).json()["predictions"] == [0, 1, 2]
            assert predict(revoked).status_code == 200
            store = KeyStore.from_settings(settings)
            try:
                store.revoke("gone")
            finally:
                store.database.close()
            time.sleep(1.2)  # past the credential cache: the database refuses it now
            assert predict(revoked).status_code == 401

            cluster.kill()
            killed = time.monotonic()
            answers: list[int] = []
            # at least OUTAGE_SECONDS and 20 requests (a loaded machine answers fewer a second)
            while time.monotonic() - killed < OUTAGE_SECONDS or len(answers) < 20:
                assert time.monotonic() - killed < 60, answers
                answer = predict(used)
                answers.append(answer.status_code)
                assert answer.status_code == 200, answer.text
                assert answer.json()["predictions"] == [0, 1, 2]
                time.sleep(0.05)

            for token in (unused, revoked):  # never verified here, or refused: not let in
                refused = predict(token)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
            forged = predict(used[:-4] + "AAAA")
            assert forged.status_code == 503, forged.text

            listed = httpx.get(
                f"{url}/api/v1/models", headers={"x-api-key": used}, timeout=30
            )  # the registry itself is down: a 503 that says so, without internals
            assert listed.status_code == 503, listed.text
            error = listed.json()["error"]
            assert error["code"] == "storage_unavailable", error
            request_id = error["details"]["request_id"]
            assert request_id in error["message"]
            for internal in INTERNALS:
                assert internal not in listed.text, listed.text
            cluster.start()
            logged = log.read_text()
            assert request_id in logged  # the cause is in the server's log, under the id
            assert "the key store is unreachable" in logged
            assert predict(used).status_code == 200
    print(f"{len(answers)} keyed predictions during a {OUTAGE_SECONDS:g} s outage, all 200")  # noqa: T201
