"""``ferry inspect`` and ``ferry save`` on real tiny models."""

from __future__ import annotations

import operator
import shutil
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

import ferry.model
from ferry.cli.main import app
from ferry.errors import BundleError, FlavorError
from ferry.model.manifest import read_manifest

Data = tuple[pd.DataFrame, pd.Series]
runner = CliRunner()


def cells(output: str) -> list[list[str]]:
    """The body rows of every rich table in ``output``, as stripped cells."""
    return [
        [c.strip() for c in line.strip("│").split("│")]
        for line in output.splitlines()
        if line[:1] == "│"
    ]


def test_inspect_bundle(iris_bundle: Path, iris_data: Data) -> None:
    X, _ = iris_data
    manifest = read_manifest(iris_bundle)
    result = runner.invoke(app, ["inspect", str(iris_bundle)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for fact in ("iris", "sklearn", "model/model.joblib", *manifest.requirements):
        assert fact in out
    rows = cells(out)
    inputs = [row for row in rows if row[0] in X.columns and len(row) == 6]
    assert [row[:5] for row in inputs] == [
        [c.name, c.dtype, "[]", "true", "false"] for c in manifest.signature.inputs
    ]
    outputs = {row[0]: row for row in rows if row[0] in ("predictions", "probabilities")}
    assert outputs["probabilities"][1:4] == ["float64", "[3]", "probabilities"]
    assert "Example (first 5 of 8 rows)" in out


def test_inspect_example_rows_and_expected_predictions(
    iris_bundle: Path, iris_model: LogisticRegression
) -> None:
    model = ferry.model.load(iris_bundle)
    assert model.example is not None
    first = model.example.take(0, 5).to_frame()
    result = runner.invoke(app, ["inspect", str(iris_bundle)])
    example = cells(result.stdout.split("Example (", 1)[1])
    assert [float(row[0]) for row in example] == first.iloc[:, 0].tolist()
    assert [row[-1] for row in example] == [str(p) for p in iris_model.predict(first)]


def test_inspect_raw_model_file(tmp_path: Path, iris_model: LogisticRegression) -> None:
    path = tmp_path / "flowers.pkl"
    joblib.dump(iris_model, path)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "flowers" in result.stdout
    assert "a raw model file" in result.stdout
    assert "Example" not in result.stdout


def test_inspect_refuses_an_edited_bundle(tmp_path: Path, iris_bundle: Path) -> None:
    copy = tmp_path / "iris"
    shutil.copytree(iris_bundle, copy)
    (copy / "example.json").write_text('{"columns": [], "data": []}')
    result = runner.invoke(app, ["inspect", str(copy)])
    assert result.exit_code == 1
    assert isinstance(result.exception, BundleError)


@pytest.fixture
def model_file(tmp_path: Path, iris_model: LogisticRegression) -> Path:
    path = tmp_path / "flowers.joblib"
    joblib.dump(iris_model, path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_save_from_file_with_example(
    suffix: str,
    tmp_path: Path,
    model_file: Path,
    iris_model: LogisticRegression,
    iris_data: Data,
) -> None:
    X, _ = iris_data
    example = X.sample(6, random_state=1)
    example_file = tmp_path / f"example{suffix}"
    if suffix == ".csv":
        example.to_csv(example_file, index=False)
    else:
        example.to_json(example_file, orient="split", index=False)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nscikit-learn>=1.4\n\npandas  # frames\n")
    dest = tmp_path / "bundle"
    result = runner.invoke(
        app,
        [
            "save",
            str(model_file),
            str(dest),
            "--example",
            str(example_file),
            "--requirements",
            str(requirements),
            "--description",
            "test flowers",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"saved flowers (sklearn) to {dest}" in result.stdout
    loaded = ferry.model.load(dest)
    assert loaded.name == "flowers"
    assert loaded.manifest.requirements == ["scikit-learn>=1.4", "pandas"]
    assert loaded.manifest.description == "test flowers"
    assert loaded.predict(example).tolist() == iris_model.predict(example).tolist()
    assert loaded.expected is not None
    assert loaded.expected["predictions"] == iris_model.predict(example).tolist()


def test_save_refuses_to_overwrite_unless_asked(
    tmp_path: Path, model_file: Path, iris_data: Data
) -> None:
    X, _ = iris_data
    example_file = tmp_path / "example.csv"
    X.head(3).to_csv(example_file, index=False)
    dest = tmp_path / "bundle"
    args = ["save", str(model_file), str(dest), "--example", str(example_file), "--name", "iris"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert isinstance(again.exception, BundleError)
    assert runner.invoke(app, [*args, "--name", "iris2", "--overwrite"]).exit_code == 0
    assert read_manifest(dest).name == "iris2"


def test_save_missing_model(tmp_path: Path, iris_data: Data) -> None:
    X, _ = iris_data
    example_file = tmp_path / "example.csv"
    X.head(3).to_csv(example_file, index=False)
    args = ["save", str(tmp_path / "nope.pkl"), str(tmp_path / "b"), "--example", str(example_file)]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, BundleError)
    assert not (tmp_path / "b").exists()


def test_save_skops_needs_trust_for_unknown_types(tmp_path: Path, iris_data: Data) -> None:
    import skops.io as sio

    X, y = iris_data
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=1000))
    model.fit(X, y)
    path = tmp_path / "negated.skops"
    sio.dump(model, path)
    untrusted = [t for t in sio.get_untrusted_types(file=path) if "neg" in t]
    assert untrusted
    example_file = tmp_path / "example.csv"
    X.head(4).to_csv(example_file, index=False)
    dest = tmp_path / "bundle"
    args = ["save", str(path), str(dest), "--example", str(example_file)]
    refused = runner.invoke(app, args)
    assert isinstance(refused.exception, FlavorError)
    assert not dest.exists()
    trusted = runner.invoke(app, [*args, *(f"--trust-type={t}" for t in untrusted)])
    assert trusted.exit_code == 0, trusted.output
    loaded = ferry.model.load(dest)
    assert loaded.predict(X.head(10)).tolist() == model.predict(X.head(10)).tolist()


def test_a_code_model_needs_trust_to_save_and_predict(
    flv_custom: Path, flv_iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """A custom class is code: ``save`` and ``predict PATH`` refuse it without --trust (the
    same opt-out as ``ferry serve``); ``inspect`` of its bundle reads only the manifest."""
    from ferry.errors import UnsafeModel

    example = tmp_path / "rows.csv"
    flv_iris_rows.head(5).to_csv(example, index=False)
    dest = tmp_path / "bundle"
    args = ["save", f"{flv_custom}:IrisPredictor", str(dest), "--example", str(example)]
    refused = runner.invoke(app, args)
    assert isinstance(refused.exception, UnsafeModel)
    assert "--trust" in refused.exception.message
    assert not dest.exists()
    assert runner.invoke(app, [*args, "--trust"]).exit_code == 0
    assert runner.invoke(app, ["inspect", str(dest)]).exit_code == 0
    predict = ["predict", str(dest), "--data", str(example), "--json"]
    assert isinstance(runner.invoke(app, predict).exception, UnsafeModel)
    trusted = runner.invoke(app, [*predict, "--trust"])
    assert trusted.exit_code == 0, trusted.output
    assert '"predictions"' in trusted.stdout
