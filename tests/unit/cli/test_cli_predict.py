"""``ferry predict PATH``: a local model, every data-file layout, answers equal the model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from ferry.cli.main import app
from ferry.errors import FlavorError, InvalidRequest, UnknownColumn

Data = tuple[pd.DataFrame, pd.Series]
runner = CliRunner()


@pytest.fixture
def rows(iris_data: Data) -> pd.DataFrame:
    X, _ = iris_data
    return X.iloc[[3, 70, 140]]


def layouts(rows: pd.DataFrame) -> dict[str, object]:
    split = json.loads(rows.to_json(orient="split", index=False))
    return {
        "instances-records": {"instances": rows.to_dict("records")},
        "instances-lists": {"instances": rows.to_numpy().tolist()},
        "inputs-columns": {"inputs": rows.to_dict("list")},
        "inputs-records": {"inputs": rows.to_dict("records")},
        "records": rows.to_dict("records"),
        "split": split,
        "dataframe_split": {"dataframe_split": split},
        "dataframe_records": {"dataframe_records": rows.to_dict("records")},
    }


def predict_json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["predict", *args, "--json"])
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


@pytest.mark.parametrize(
    "layout",
    [
        "instances-records",
        "instances-lists",
        "inputs-columns",
        "inputs-records",
        "records",
        "split",
        "dataframe_split",
        "dataframe_records",
        "csv",
    ],
)
def test_every_layout_gives_the_models_predictions(
    layout: str,
    tmp_path: Path,
    iris_bundle: Path,
    iris_model: LogisticRegression,
    rows: pd.DataFrame,
) -> None:
    if layout == "csv":
        data = tmp_path / "rows.csv"
        rows.to_csv(data, index=False)
    else:
        data = tmp_path / "rows.json"
        data.write_text(json.dumps(layouts(rows)[layout]))
    answer = predict_json(str(iris_bundle), "--data", str(data))
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    assert answer["model"] == "iris"
    assert "probabilities" not in answer


def test_outputs_and_name(
    tmp_path: Path, iris_bundle: Path, iris_model: LogisticRegression, rows: pd.DataFrame
) -> None:
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    answer = predict_json(
        str(iris_bundle), "--data", str(data), "-o", "label", "-o", "probabilities", "-n", "x"
    )
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    np.testing.assert_allclose(
        np.asarray(answer["probabilities"]), iris_model.predict_proba(rows), rtol=1e-12
    )
    assert answer["model"] == "x"


def test_raw_model_file(tmp_path: Path, iris_model: LogisticRegression, rows: pd.DataFrame) -> None:
    import joblib

    model_file = tmp_path / "flowers.joblib"
    joblib.dump(iris_model, model_file)
    data = tmp_path / "rows.json"
    data.write_text(json.dumps({"instances": rows.to_dict("records")}))
    answer = predict_json(str(model_file), "--data", str(data))
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    assert answer["model"] == "flowers"


def test_json_and_csv_with_missing_values_agree(
    tmp_path: Path, mixed_bundle: Path, mixed_model: tuple[Pipeline, pd.DataFrame]
) -> None:
    model, frame = mixed_model
    rows = frame.iloc[:30]
    assert rows.isna().any().any()  # nullable ints, floats and strings are in play
    csv_file = tmp_path / "rows.csv"
    rows.to_csv(csv_file, index=False)
    json_file = tmp_path / "rows.json"
    json_file.write_text(rows.to_json(orient="split", index=False))
    expected = model.predict(rows).tolist()
    for data in (csv_file, json_file):
        assert predict_json(str(mixed_bundle), "--data", str(data))["predictions"] == expected


def test_table_shows_inputs_and_predictions(
    tmp_path: Path, iris_bundle: Path, iris_model: LogisticRegression, rows: pd.DataFrame
) -> None:
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    result = runner.invoke(app, ["predict", str(iris_bundle), "--data", str(data)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [*rows.columns, "prediction"]
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in lines if line[:1] == "│"]
    assert [row[-1] for row in cells] == [str(p) for p in iris_model.predict(rows).tolist()]
    assert [float(row[0]) for row in cells] == rows.iloc[:, 0].tolist()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"instances": [{"sepal_length": 1.0, "colour": "red"}]}', UnknownColumn),
        ('{"rows": []}', InvalidRequest),
        ('{"columns": ["a"], "data": [[1, 2]]}', InvalidRequest),
        ("not json", InvalidRequest),
    ],
)
def test_bad_data_names_the_problem(
    tmp_path: Path, iris_bundle: Path, content: str, error: type[Exception]
) -> None:
    data = tmp_path / "rows.json"
    data.write_text(content)
    result = runner.invoke(app, ["predict", str(iris_bundle), "--data", str(data)])
    assert result.exit_code == 1
    assert isinstance(result.exception, error)


def test_model_without_inputs_needs_a_bundle(tmp_path: Path) -> None:
    import joblib

    model_file = tmp_path / "bare.joblib"
    joblib.dump(LogisticRegression(), model_file)  # unfitted: no feature names or count
    data = tmp_path / "rows.json"
    data.write_text("[[1, 2, 3]]")
    result = runner.invoke(app, ["predict", str(model_file), "--data", str(data)])
    assert isinstance(result.exception, FlavorError)
