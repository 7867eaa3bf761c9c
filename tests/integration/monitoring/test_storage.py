"""Monitoring rows on both registry backends: profiles, drift history, gauges, telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ferry.errors import DriftReportNotFound, ProfileNotFound, VersionNotFound
from ferry.monitoring.drift import compute_drift
from ferry.monitoring.gauges import METRIC_NAMES, render_drift_metrics
from ferry.monitoring.profile import profile_frame
from ferry.monitoring.sites import METRIC_NAMES as SITE_METRIC_NAMES
from ferry.monitoring.sites import render_site_metrics
from ferry.monitoring.storage import MonitoringStore
from ferry.registry import Registry
from tests.registry_fixtures import Backend, bundle_variant
from tests.unit.monitoring.test_drift import SHIFTED, iris_population, shift

pytestmark = pytest.mark.integration


@pytest.fixture
def monitoring(registry_backend: Backend) -> Iterator[MonitoringStore]:
    """Monitoring's own database: the same one the registry fixture opened."""
    with MonitoringStore.open(registry_backend.database_url) as store:
        yield store


def test_profiles_drift_history_and_gauges(
    monitoring: MonitoringStore, registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    registry.register(iris_bundle, "iris")
    registry.register(bundle_variant(iris_bundle, tmp_path / "v2", "two"), "iris")
    store = monitoring
    with pytest.raises(ProfileNotFound, match="no reference profile"):
        store.get_profile("iris", 1)
    with pytest.raises(VersionNotFound):
        store.save_profile("iris", 9, profile_frame(iris_population(50, 1), source="x"))

    profile = profile_frame(iris_population(1000, seed=1), source="reference")
    store.save_profile("iris", 1, profile)
    assert store.get_profile("iris", 1) == profile
    store.save_profile("iris", 1, profile.model_copy(update={"source": "again"}))
    assert store.get_profile("iris", 1).source == "again"  # replaced, not duplicated

    start = datetime.now(UTC)
    ids = []
    for i, live in enumerate(
        [iris_population(500, seed=2), shift(iris_population(500, seed=3), SHIFTED)]
    ):
        report = compute_drift(profile, live).model_copy(
            update={"model": "iris", "version": 1, "created_at": start + timedelta(seconds=i)}
        )
        ids.append(store.add_drift(report))
    other = compute_drift(profile, iris_population(500, seed=4)).model_copy(
        update={"model": "iris", "version": 2}
    )
    store.add_drift(other)

    history = store.drift_history("iris", 1)
    assert [r.id for r in history] == ids[::-1]
    assert history[0].report.drifted_features == SHIFTED
    assert not history[1].report.drifted
    assert store.get_drift(ids[0]).report.live_rows == 500
    with pytest.raises(DriftReportNotFound):
        store.get_drift(10_000)
    latest = {(r.model, r.version): r for r in store.latest_drift()}
    assert set(latest) == {("iris", 1), ("iris", 2)}
    assert latest["iris", 1].id == ids[1]

    text = render_drift_metrics(store.latest_drift()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(METRIC_NAMES) <= set(families)
    psi = {
        (s.labels["version"], s.labels["feature"]): s.value
        for s in families["ferry_drift_psi"].samples
    }
    shifted_report = latest["iris", 1].report
    for feature in shifted_report.features:
        assert psi["1", feature.name] == pytest.approx(feature.tests["psi"].statistic)
    drifted = {
        s.labels["feature"]
        for s in families["ferry_drift_feature_drifted"].samples
        if s.labels["version"] == "1" and s.value == 1.0
    }
    assert drifted == set(SHIFTED)

    registry.delete_model("iris")  # profiles and reports go with the versions
    assert store.drift_history("iris") == []
    assert store.latest_drift() == []


def test_telemetry_imports_are_kept_once(monitoring: MonitoringStore, registry: Registry) -> None:
    store = monitoring
    now = datetime.now(UTC).replace(microsecond=0)
    first, created = store.add_telemetry(
        site="acme",
        bundle_sha256="a" * 64,
        created_at=now,
        since=now - timedelta(days=7),
        until=now,
        summary={"requests": 10},
    )
    assert created
    again, created = store.add_telemetry(
        site="acme",
        bundle_sha256="a" * 64,
        created_at=now,
        since=now - timedelta(days=7),
        until=now,
        summary={"requests": 10},
    )
    assert not created
    assert again.id == first.id
    [stored] = store.telemetry("acme")
    assert stored.summary == {"requests": 10}
    assert stored.since == now - timedelta(days=7)
    assert store.telemetry("other") == []


def test_each_sites_newest_bundle_and_its_gauges(
    monitoring: MonitoringStore, registry: Registry
) -> None:
    store = monitoring
    now = datetime.now(UTC).replace(microsecond=0)

    def add(site: str, age_hours: int, summary: dict[str, object]) -> None:
        created = now - timedelta(hours=age_hours)
        store.add_telemetry(
            site=site,
            bundle_sha256=f"{site}-{age_hours}".ljust(64, "0"),
            created_at=created,
            since=created - timedelta(days=1),
            until=created,
            summary=summary,
        )

    def counts(requests: int) -> dict[str, object]:
        version = {"model": "iris", "version": "1", "requests": requests, "server_errors": 1}
        return {"summary": {"drifted_versions": []}, "predictions": {"versions": [version]}}

    add("acme", 5, counts(10))
    add("acme", 1, counts(30))  # acme's newest
    add("acme", 3, counts(20))
    # an odd bundle: counts only from /metrics, a drifted version, entries that fit no shape
    add("beta", 2, {
        "summary": {"drifted_versions": ["churn/2", "nonsense"]},
        "models": [{"model": "churn", "version": 2}, {"model": "churn", "version": 3}, "x"],
        "predictions": {"versions": []},
        "metrics": {"versions": [{"model": "churn", "version": "3", "requests": "many"}, 7]},
    })  # fmt: skip
    latest = store.latest_telemetry()
    assert [(item.site, item.created_at, bundles) for item, bundles in latest] == [
        ("acme", now - timedelta(hours=1), 3),
        ("beta", now - timedelta(hours=2), 1),
    ]
    assert latest[0][0].summary == counts(30)

    text = render_site_metrics(latest).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    acme, beta = (("site", "acme"),), (("site", "beta"),)
    iris = (("model", "iris"), ("site", "acme"), ("version", "1"))
    assert samples == {
        ("ferry_site_last_report_timestamp_seconds", acme): latest[0][0].created_at.timestamp(),
        ("ferry_site_last_report_timestamp_seconds", beta): latest[1][0].created_at.timestamp(),
        ("ferry_site_window_end_timestamp_seconds", acme): latest[0][0].until.timestamp(),
        ("ferry_site_window_end_timestamp_seconds", beta): latest[1][0].until.timestamp(),
        ("ferry_site_bundles", acme): 3.0,
        ("ferry_site_bundles", beta): 1.0,
        ("ferry_site_requests", iris): 30.0,
        ("ferry_site_server_errors", iris): 1.0,
        ("ferry_site_drifted", (("model", "churn"), ("site", "beta"), ("version", "2"))): 1.0,
        ("ferry_site_drifted", (("model", "churn"), ("site", "beta"), ("version", "3"))): 0.0,
    }
    assert {name for name, _ in samples} <= set(SITE_METRIC_NAMES)


def test_profile_made_from_the_stored_example_when_missing(
    monitoring: MonitoringStore, registry: Registry, iris_bundle: Path
) -> None:
    from ferry.monitoring.references import reference_profile

    registry.register(iris_bundle, "iris")  # directly: no upload, so no profile yet
    store = monitoring
    assert store.profiled_versions() == []
    profile = reference_profile(registry, store, "iris", 1)
    assert profile.source == "example"
    assert profile.rows == 8  # the bundle's example rows
    assert [f.name for f in profile.features] == [
        c.name for c in registry.get_version("iris", 1).signature.inputs
    ]
    assert store.profiled_versions() == [("iris", 1)]
    assert store.get_profile("iris", 1) == profile
