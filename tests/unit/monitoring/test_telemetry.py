"""Signed telemetry bundles: a valid one round-trips, any changed byte is refused."""

from __future__ import annotations

import io
import json
import random
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ferry.errors import ConfigError, TelemetryRejected
from ferry.monitoring.summaries import histogram_quantile, summarize_metrics
from ferry.monitoring.telemetry import (
    MANIFEST,
    SIGNATURE,
    canonical,
    load_key,
    read_bundle,
    sign,
    verify_bundle,
    write_bundle,
)

KEY = b"a shared key of more than 16 bytes"
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
FILES = {
    "summary.json": canonical({"requests": 1200, "server_errors": 3}),
    "drift.json": canonical([{"model": "iris", "version": 1, "drifted": True}]),
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    out = tmp_path / "bundle.tgz"
    write_bundle(out, FILES, key=KEY, site="acme-plant-3", since=NOW - timedelta(days=7), until=NOW)
    return out


def test_valid_bundle_round_trips(bundle: Path) -> None:
    verified = read_bundle(bundle, KEY)
    assert verified.files == FILES
    assert verified.site == "acme-plant-3"
    assert verified.manifest["since"] == (NOW - timedelta(days=7)).isoformat()
    assert set(verified.manifest["files"]) == set(FILES)
    assert verified.json("summary.json") == {"requests": 1200, "server_errors": 3}
    with tarfile.open(bundle) as archive:  # an ordinary .tgz for any tool
        assert sorted(archive.getnames()) == sorted([MANIFEST, SIGNATURE, *FILES])


def test_every_tampered_byte_is_rejected(bundle: Path) -> None:
    data = bundle.read_bytes()
    for position in range(len(data)):
        tampered = bytearray(data)
        tampered[position] ^= 0xFF
        with pytest.raises(TelemetryRejected):
            verify_bundle(bytes(tampered), KEY)
    with pytest.raises(TelemetryRejected):
        verify_bundle(data + b"\x00", KEY)  # a byte appended
    with pytest.raises(TelemetryRejected):
        verify_bundle(data[:-1], KEY)  # a byte dropped


def repack(data: bytes, change: dict[str, bytes]) -> bytes:
    """The bundle re-archived with some members' contents replaced (a well-formed fake)."""
    from ferry.monitoring.telemetry import _gzip, _tar

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        entries = {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
        }
    entries.update(change)
    return _gzip(_tar(entries), KEY)


def test_changed_content_with_valid_framing_is_rejected(bundle: Path) -> None:
    data = bundle.read_bytes()
    assert verify_bundle(repack(data, {}), KEY).files == FILES  # repacking alone is harmless
    forged = canonical({"requests": 1200, "server_errors": 0})
    with pytest.raises(TelemetryRejected, match=r"summary.json does not match its hash"):
        verify_bundle(repack(data, {"summary.json": forged}), KEY)
    manifest = json.loads(repack_member(data, MANIFEST))
    manifest["files"]["summary.json"]["sha256"] = "0" * 64
    with pytest.raises(TelemetryRejected, match="signature does not match"):
        verify_bundle(repack(data, {MANIFEST: canonical(manifest)}), KEY)
    with pytest.raises(TelemetryRejected, match="not the ones its manifest lists"):
        verify_bundle(repack(data, {"extra.json": b"{}"}), KEY)


def repack_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile(name)
        assert member is not None
        return member.read()


def test_resigned_with_another_key_is_rejected(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(TelemetryRejected, match="seal does not match"):
        read_bundle(bundle, b"another key, also 16 bytes or more")
    data = bundle.read_bytes()
    manifest = repack_member(data, MANIFEST)
    forged = repack(data, {SIGNATURE: sign(manifest, b"the attacker's own long key").encode()})
    with pytest.raises(TelemetryRejected, match="signature does not match"):
        verify_bundle(forged, KEY)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(TelemetryRejected, match="gzip header"):
        verify_bundle(b"hello", KEY)
    from ferry.monitoring.telemetry import _gzip, _tar

    with pytest.raises(TelemetryRejected, match="flat names only"):
        verify_bundle(_gzip(_tar({"../escape.json": b"{}"}), KEY), KEY)
    with pytest.raises(TelemetryRejected, match="seal does not match"):
        verify_bundle(_gzip(random.Random(0).randbytes(5000), KEY)[:-40], KEY)


def test_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERRY_TELEMETRY_KEY", raising=False)
    with pytest.raises(ConfigError, match="no telemetry key"):
        load_key()
    monkeypatch.setenv("FERRY_TELEMETRY_KEY", "short")
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        load_key()
    monkeypatch.setenv("FERRY_TELEMETRY_KEY", KEY.decode())
    assert load_key() == KEY
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    assert load_key(key_file) == KEY


METRICS = """\
# TYPE ferry_requests_total counter
ferry_requests_total{model="iris",version="1",protocol="native",status="200"} 90.0
ferry_requests_total{model="iris",version="1",protocol="mlflow",status="200"} 5.0
ferry_requests_total{model="iris",version="1",protocol="native",status="422"} 4.0
ferry_requests_total{model="iris",version="1",protocol="native",status="500"} 1.0
# TYPE ferry_predicted_rows_total counter
ferry_predicted_rows_total{model="iris",version="1"} 950.0
# TYPE ferry_errors_total counter
ferry_errors_total{code="invalid_input"} 4.0
ferry_errors_total{code="prediction_failed"} 1.0
# TYPE ferry_request_duration_seconds histogram
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="native",le="0.001"} 10.0
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="native",le="0.01"} 90.0
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="native",le="0.1"} 95.0
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="native",le="+Inf"} 95.0
ferry_request_duration_seconds_count{model="iris",version="1",protocol="native"} 95.0
ferry_request_duration_seconds_sum{model="iris",version="1",protocol="native"} 0.5
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="mlflow",le="0.001"} 0.0
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="mlflow",le="0.01"} 5.0
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="mlflow",le="0.1"} 5.0
ferry_request_duration_seconds_bucket{model="iris",version="1",protocol="mlflow",le="+Inf"} 5.0
ferry_request_duration_seconds_count{model="iris",version="1",protocol="mlflow"} 5.0
ferry_request_duration_seconds_sum{model="iris",version="1",protocol="mlflow"} 0.02
"""


def test_metrics_summary() -> None:
    summary = summarize_metrics(METRICS)
    [iris] = summary["versions"]
    assert iris["requests"] == 100
    assert iris["requests_by_status"] == {"200": 95, "422": 4, "500": 1}
    assert iris["server_errors"] == 1
    assert iris["client_errors"] == 4
    assert iris["rows"] == 950
    assert iris["latency_mean_seconds"] == pytest.approx(0.52 / 100)
    # 100 observations: the 50th lies in (0.001, 0.01], 40 of its 85 along
    assert iris["latency_p50_seconds"] == pytest.approx(0.001 + 0.009 * 40 / 85)
    assert iris["latency_p99_seconds"] == pytest.approx(0.01 + 0.09 * 4 / 5)
    assert summary["errors_by_code"] == {"invalid_input": 4, "prediction_failed": 1}


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {1.0: 0.0, float("inf"): 0.0}) is None
    assert histogram_quantile(0.99, {1.0: 1.0, float("inf"): 10.0}) == 1.0
