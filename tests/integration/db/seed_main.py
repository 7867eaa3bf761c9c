"""Run with main's ``src`` first on ``sys.path`` (``git archive main``): migrate a database
with main's migrations and write rows in every layer's tables with main's own code (raw rows
where main has no small writer); prints what the test checks afterwards, as JSON."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa


def main() -> None:
    url, artifacts, bundle = sys.argv[1:4]
    import ferry

    assert "ferry/db/" not in ferry.__file__  # main's tree, not today's
    from ferry.monitoring.storage import MonitoringStore
    from ferry.packaging.jobs import BuildStore
    from ferry.registry import Registry
    from ferry.registry.metadata import tables as t
    from ferry.registry.metadata.engine import create_engine
    from ferry.registry.migrations import current_revision, upgrade
    from ferry.security.database import SecurityDatabase
    from ferry.security.keys import KeyStore

    upgrade(url)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with Registry.open(url, artifacts) as registry:
        version = registry.register(
            Path(bundle), "iris", metrics={"accuracy": 0.97}, tags={"team": "ml"}
        )
        registry.set_alias("iris", "prod", 1)
    key = KeyStore(SecurityDatabase(url), b"s" * 32).create("ci", ["predict"])
    builds = BuildStore(url)
    build = builds.create("iris", 1, {"tag": "iris:1"}, "ci")
    builds.close()
    with MonitoringStore.open(url) as store:
        store.add_telemetry(
            site="edge-1",
            bundle_sha256="a" * 64,
            created_at=now,
            since=now,
            until=now,
            summary={"requests": 3},
        )
    engine = create_engine(url)
    with engine.begin() as conn:
        version_id = conn.execute(sa.select(t.versions.c.id)).scalar_one()
        model_id = conn.execute(sa.select(t.models.c.id)).scalar_one()
        conn.execute(sa.insert(t.model_tags).values(model_id=model_id, key="owner", value="ml"))
        conn.execute(
            sa.insert(t.usage).values(
                day="2026-12-01", principal="ci", model="iris", version="1",
                requests=5, rows=40, errors=1, compute_ms=12.5,
            )
        )  # fmt: skip
        conn.execute(sa.insert(t.quota_counters).values(name="rpm:ci:1", count=2, expires_at=9e9))
        chunk = conn.execute(
            sa.insert(t.prediction_chunks).values(
                model="iris", version="1", requests=1, first_us=1, last_us=2,
                low_key=10, high_key=10, meta="{}", data="[]",
            )
        ).inserted_primary_key  # fmt: skip
        assert chunk is not None
        conn.execute(sa.insert(t.prediction_ids).values(request_key=77, chunk_id=chunk[0]))
        conn.execute(
            sa.insert(t.prediction_feedback).values(
                request_id="req-1", model="iris", version="1", truth='"setosa"', at=now
            )
        )
        conn.execute(
            sa.insert(t.reference_profiles).values(
                version_id=version_id, source="example", rows=8, created_at=now,
                profile={"features": {}},
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(t.drift_results).values(
                version_id=version_id, created_at=now, window_start=None, window_end=None,
                live_rows=8, drifted=False, drifted_features=0, report={"features": []},
            )
        )  # fmt: skip
    engine.dispose()
    print(
        json.dumps(
            {
                "revision": current_revision(url),
                "sha256": version.sha256,
                "token": key.token,
                "build": build.id,
            }
        )
    )


if __name__ == "__main__":
    main()
