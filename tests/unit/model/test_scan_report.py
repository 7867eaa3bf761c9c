"""One rule for every load: ``scan_model`` scans the pickles and classes the model as data or
code, ``enforce`` refuses unsafe pickles or code unless trusted, and ``ferry.model.load``
applies it (the os.system pickle that ``ferry serve`` refused used to run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ferry.model
from ferry.errors import UnsafeModel
from ferry.model.scanner.scan import LOCAL_HINT, enforce, scan_model
from tests.attack_corpus import build, ran


def test_a_code_model_is_refused_naming_what_is_code(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    root = build("mlflow_loader_module", tmp_path / "m", marker)
    report = scan_model(root)
    assert report.pickles_ok
    assert report.kind.is_code
    assert not report.ok
    summary = report.summary()
    assert summary["kind"] == "code"
    assert summary["verdict"] == "rejected"
    assert any("evil_loader" in reason for reason in summary["code"])  # type: ignore[attr-defined]
    with pytest.raises(UnsafeModel, match="evil_loader") as caught:
        enforce(report, hint=LOCAL_HINT)
    assert "--trust" in caught.value.message
    assert caught.value.details["code"] == list(report.kind.reasons)
    trusted = scan_model(root, trust=True)
    enforce(trusted)
    assert trusted.summary()["verdict"] == "trusted"
    assert not ran(marker)


def test_a_custom_class_spec_is_code(tmp_path: Path) -> None:
    spec = build("predictor_reads_secrets", tmp_path / "m", tmp_path / "MARKER")
    report = scan_model(spec)
    assert report.files == ()
    assert report.kind.is_code
    with pytest.raises(UnsafeModel, match="Python class"):
        enforce(report)


def test_a_data_model_passes(iris_bundle: Path) -> None:
    report = scan_model(iris_bundle)
    assert report.ok
    assert report.summary()["kind"] == "data"
    enforce(report)


def test_ferry_model_load_scans_local_files(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = build("classic:plain.p4.pkl", tmp_path / "m", marker)
    with pytest.raises(UnsafeModel, match=r"posix\.system"):
        ferry.model.load(path)
    assert not marker.exists()
