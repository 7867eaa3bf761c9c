"""Which models are code: custom classes and MLflow python_function folders; the rest is data."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ferry.model.kinds import classify


def _mlmodel(root: Path, flavors: dict[str, object]) -> Path:
    root.mkdir()
    (root / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}), encoding="utf-8")
    return root


def test_custom_class_spec_and_python_file_are_code(tmp_path: Path) -> None:
    source = tmp_path / "predictor.py"
    source.write_text("class M:\n    pass\n", encoding="utf-8")
    assert classify(f"{source}:M").is_code
    assert classify(source).is_code


def test_pyfunc_loader_module_is_code(tmp_path: Path) -> None:
    root = _mlmodel(
        tmp_path / "evil",
        {"python_function": {"loader_module": "evil_loader", "code": "code"}},
    )
    kind = classify(root)
    assert kind.is_code
    assert any("evil_loader" in reason for reason in kind.reasons)
    assert any("code paths" in reason for reason in kind.reasons)
    assert classify(root / "MLmodel").is_code


def test_mlflow_native_flavor_is_data(tmp_path: Path) -> None:
    root = _mlmodel(
        tmp_path / "sk",
        {
            "sklearn": {"pickled_model": "model.pkl"},
            "python_function": {"loader_module": "mlflow.sklearn"},
        },
    )
    assert not classify(root).is_code


@pytest.mark.parametrize("name", ["model.pkl", "model.onnx", "model.skops", "model.json"])
def test_model_files_are_data(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert not classify(path).is_code


def test_bundle_kind_follows_its_manifest(iris_bundle: Path) -> None:
    assert not classify(iris_bundle).is_code
