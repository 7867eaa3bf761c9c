"""Telemetry from a site to us with the CLI: export a signed bundle from a running site,
import it on our side, see the site (``ferry telemetry sites`` and our server's /metrics); a
bundle with one changed byte is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import IRIS_COLUMNS
from tests.integration.conftest import platform_server
from tests.integration.control.conftest import ISOLATED, StartControl
from tests.integration.monitoring.conftest import post
from tests.unit.monitoring.test_drift import iris_population, shift

pytestmark = pytest.mark.integration

KEY = "telemetry key shared with the site"
REQUESTS = 25


def ferry(home: Path, *args: str, key_env: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED}
    env.update({"FERRY_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if key_env:
        env["FERRY_TELEMETRY_KEY"] = KEY
    else:
        env.pop("FERRY_TELEMETRY_KEY", None)
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "ferry", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_site_bundle_round_trip_and_tamper(
    start_control: StartControl, iris_bundle: Path, tmp_path: Path
) -> None:
    site = start_control(FERRY_TELEMETRY_SITE="acme-plant-3")
    reference = tmp_path / "train.csv"
    iris_population(1000, 1).set_axis(IRIS_COLUMNS, axis=1).to_csv(reference, index=False)
    registered = site.ferry(
        "register", str(iris_bundle), "-n", "iris", "--reference", str(reference)
    )
    assert registered.returncode == 0, registered
    rows = iris_population(50, 4).set_axis(IRIS_COLUMNS, axis=1)
    for _ in range(REQUESTS):
        answer = post(
            f"{site.url}/v1/models/iris/predict", json={"instances": rows[:2].to_dict("records")}
        )
        assert answer.status_code == 200
    bad = post(f"{site.url}/v1/models/iris/predict", json={"instances": [{"x": 1}]})
    assert bad.status_code == 422
    live = tmp_path / "live.csv"
    shift(iris_population(300, 5).set_axis(IRIS_COLUMNS, axis=1), ["petal_width"]).to_csv(
        live, index=False
    )
    assert site.ferry("drift", "iris", "--data", str(live)).returncode == 0

    bundle = tmp_path / "bundle.tgz"
    exported = ferry(
        site.home,
        "telemetry",
        "export",
        "--since",
        "7d",
        "--out",
        str(bundle),
        "--metrics-url",
        site.url,
        "--site",
        "acme-plant-3",
    )
    assert exported.returncode == 0, exported
    assert "summary.json" in exported.stdout
    samples_bundle = tmp_path / "with-samples.tgz"
    with_samples = ferry(
        site.home,
        "telemetry",
        "export",
        "--out",
        str(samples_bundle),
        "--include-samples",
        "--max-samples",
        "5",
    )
    assert with_samples.returncode == 0, with_samples
    from ferry.monitoring.telemetry import read_bundle

    shipped = read_bundle(samples_bundle, KEY.encode())
    lines = [json.loads(line) for line in shipped.files["samples.jsonl"].splitlines()]
    assert len(lines) == 5
    assert all(line["model"] == "iris" for line in lines)
    assert any(line["inputs"] for line in lines)  # raw inputs: only because we asked
    assert "samples.jsonl" not in read_bundle(bundle, KEY.encode()).files

    ours = tmp_path / "our-home"
    no_key = ferry(ours, "telemetry", "import", str(bundle), key_env=False)
    assert no_key.returncode == 1
    assert "FERRY_TELEMETRY_KEY" in no_key.stdout + no_key.stderr

    tampered = tmp_path / "tampered.tgz"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    refused = ferry(ours, "telemetry", "import", str(tampered))
    assert refused.returncode == 1
    assert "seal does not match" in refused.stdout + refused.stderr
    assert json.loads(ferry(ours, "telemetry", "sites", "--json").stdout) == []

    imported = ferry(ours, "telemetry", "import", str(bundle))
    assert imported.returncode == 0, imported
    assert "imported: site acme-plant-3" in imported.stdout
    again = ferry(ours, "telemetry", "import", str(bundle))
    assert "already imported" in again.stdout

    [entry] = json.loads(ferry(ours, "telemetry", "sites", "--json").stdout)
    assert entry["site"] == "acme-plant-3"
    assert entry["bundles"] == 1
    summary = entry["summary"]
    assert summary["summary"]["versions"] == 1
    assert summary["summary"]["requests"] == REQUESTS + 1  # from the prediction log's window
    assert summary["summary"]["client_errors"] == 1
    assert summary["summary"]["counts_from"] == "prediction log"
    [logged] = summary["predictions"]["versions"]
    assert logged["requests_by_status"] == {"200": REQUESTS, "422": 1}
    assert logged["rows"] == 2 * REQUESTS
    assert summary["summary"]["drift_runs"] == 1
    assert summary["summary"]["drifted_versions"] == ["iris/1"]
    [version] = summary["metrics"]["versions"]
    assert version["rows"] == 2 * REQUESTS
    assert version["latency_p99_seconds"] > 0
    assert summary["drift"][0]["report"]["drifted_features"] == ["petal_width"]
    assert [m["model"] for m in summary["models"]] == ["iris"]
    assert "samples.jsonl" not in summary["files"]  # aggregates only
    table = ferry(ours, "telemetry", "sites").stdout
    assert "acme-plant-3" in table

    # our server shows the site on /metrics, the same from each of its workers
    manifest = read_bundle(bundle, KEY.encode()).manifest
    with platform_server(ours, "--workers", "2", log=tmp_path / "ours.log") as url:
        scrapes = [site_samples(httpx.get(f"{url}/metrics", timeout=60).text) for _ in range(8)]
    assert all(scrape == scrapes[0] for scrape in scrapes)
    samples = scrapes[0]
    site_labels = (("site", "acme-plant-3"),)
    iris_v1 = (("model", "iris"), ("site", "acme-plant-3"), ("version", "1"))
    assert samples == {
        ("ferry_site_last_report_timestamp_seconds", site_labels): pytest.approx(
            datetime.fromisoformat(manifest["created_at"]).timestamp()
        ),
        ("ferry_site_window_end_timestamp_seconds", site_labels): pytest.approx(
            datetime.fromisoformat(manifest["until"]).timestamp()
        ),
        ("ferry_site_bundles", site_labels): 1.0,
        ("ferry_site_requests", iris_v1): REQUESTS + 1,
        ("ferry_site_client_errors", iris_v1): 1.0,
        ("ferry_site_server_errors", iris_v1): 0.0,
        ("ferry_site_drifted", iris_v1): 1.0,
    }


def site_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("ferry_site_")
        for sample in family.samples
    }
