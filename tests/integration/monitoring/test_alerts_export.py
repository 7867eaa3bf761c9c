"""``ferry monitoring export``: rules that promtool accepts, a dashboard over real metric names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferry.monitoring.alerts import DASHBOARD_FILE, RULES_FILE, AlertLimits
from ferry.monitoring.gauges import METRIC_NAMES
from tests.registry_fixtures import unavailable

pytestmark = pytest.mark.integration

SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def exported_metric_names() -> set[str]:
    """Every series name Ferry's /metrics can carry: the serving metrics and drift gauges."""
    from prometheus_client import CollectorRegistry

    from ferry.monitoring.metrics import ServingMetrics

    metrics = ServingMetrics()
    assert isinstance(metrics.registry, CollectorRegistry)
    names = {family.name for family in metrics.registry.collect()}
    names |= {f"{name}{suffix}" for name in names for suffix in SUFFIXES}
    return names | set(METRIC_NAMES)


def ferry_names(expression: str) -> set[str]:
    return set(re.findall(r"\bferry_[a-z0-9_]+", expression))


def test_export_writes_valid_rules_and_dashboard(tmp_path: Path) -> None:
    out = tmp_path / "monitoring"
    env = {
        **os.environ,
        "FERRY_HOME": str(tmp_path / "home"),
        "FERRY_DRIFT_THRESHOLDS": '{"psi": 0.3}',
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    run = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "ferry", "monitoring", "export", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert RULES_FILE in run.stdout
    rules_file, dashboard_file = out / RULES_FILE, out / DASHBOARD_FILE
    known = exported_metric_names()

    rules = yaml.safe_load(rules_file.read_text())
    [group] = rules["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {
        "FerryHighErrorRate",
        "FerryHighLatencyP99",
        "FerryDataDrift",
        "FerryModelServerDown",
    } <= set(alerts)
    assert alerts["FerryDataDrift"]["expr"] == "ferry_drift_psi > 0.3"  # the configured PSI
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert ferry_names(rule["expr"]) <= known, rule["alert"]

    dashboard = json.loads(dashboard_file.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    used = set().union(*(ferry_names(e) for e in exprs))
    assert used <= known
    assert {
        "ferry_requests_total",
        "ferry_request_duration_seconds_bucket",
        "ferry_drift_psi",
    } <= used
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))

    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("no promtool on PATH (make test installs it: apt-get install prometheus)")
    assert promtool is not None
    check = subprocess.run(  # noqa: S603 - a fixed command line
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(group['rules'])} rules found" in check.stdout


def test_limits_reach_the_rules() -> None:
    from ferry.monitoring.alerts import alert_rules

    rules = alert_rules(AlertLimits(error_ratio=0.01, latency_p99_seconds=2.0, job="models"))
    by_name = {r["alert"]: r for r in rules["groups"][0]["rules"]}
    assert by_name["FerryHighErrorRate"]["expr"].endswith("> 0.01")
    assert by_name["FerryHighLatencyP99"]["expr"].endswith("> 2.0")
    assert by_name["FerryModelServerDown"]["expr"] == 'up{job="models"} == 0'
