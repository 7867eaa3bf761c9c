"""ONNX conversion: the copy answers like the original, or the conversion is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ferry.model
from ferry.errors import FlavorError
from ferry.model.optimize import generated_rows, optimize_to_onnx


def test_classifier_converts_and_answers_alike(
    iris_bundle: Path, iris_data: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, _ = iris_data
    result = optimize_to_onnx(iris_bundle, tmp_path / "onnx")
    assert result.manifest.flavor == "onnx"
    assert result.comparison.label_mismatches == 0
    assert result.comparison.rows > 100
    original = ferry.model.load(iris_bundle)
    converted = ferry.model.load(tmp_path / "onnx")
    assert converted.signature.names == original.signature.names
    assert converted.predict(X).tolist() == original.predict(X).tolist()
    np.testing.assert_allclose(converted.predict_proba(X), original.predict_proba(X), atol=1e-4)


def test_regression_pipeline_converts(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
    ferry.model.save(model, tmp_path / "sk", example=X.head(10), name="diabetes")
    result = optimize_to_onnx(tmp_path / "sk", tmp_path / "onnx")
    assert result.comparison.max_abs_difference < 1e-4
    converted = ferry.model.load(tmp_path / "onnx")
    np.testing.assert_allclose(converted.predict(X), model.predict(X), rtol=1e-4)


def test_string_inputs_are_refused(mixed_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="numeric"):
        optimize_to_onnx(mixed_bundle, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_generated_rows_stay_in_the_example_range(iris_bundle: Path) -> None:
    example = ferry.model.load(iris_bundle).example
    assert example is not None
    rows = generated_rows(example, 200, seed=1)
    assert rows.n_rows == 200
    for name, values in rows.columns.items():
        assert values.min() >= example.columns[name].min()
        assert values.max() <= example.columns[name].max()


def test_cli_optimize(iris_bundle: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferry.cli.main import app

    result = CliRunner().invoke(app, ["optimize", str(iris_bundle), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "labels that differ" in result.output
    assert ferry.model.load(tmp_path / "o").manifest.flavor == "onnx"
