"""Every flavor variant as a case: the model to save, rows to send, and its own answers.

Shared by the in-process flavor tests and the served-over-HTTP flavor tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


@dataclass(frozen=True)
class Case:
    """A model to save, the rows to send, and what the original model answers for them."""

    flavor: str
    source: object
    example: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None
    tolerance: float = 1e-9


Builder = Callable[[pytest.FixtureRequest], Case]


def value_of(request: pytest.FixtureRequest, name: str) -> Any:
    return request.getfixturevalue(name)


def _classifier(flavor: str, model: Any, source: object, rows: pd.DataFrame) -> Case:
    return Case(
        flavor,
        source,
        rows,
        np.asarray(model.predict(rows)),
        np.asarray(model.predict_proba(rows)),
        np.asarray(model.classes_).tolist(),
    )


def _onnx_run(path: Path, matrix: np.ndarray) -> list[Any]:
    """The ONNX model's own answer, straight from onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, {"float_input": matrix.astype(np.float32)}))


# --- one builder per flavor variant ------------------------------------------------------------
def sklearn_logreg(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_logreg"), value_of(request, "flv_iris_rows")
    return _classifier("sklearn", model, model, rows)


def sklearn_forest_strings(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_forest"), value_of(request, "flv_iris_rows")
    return _classifier("sklearn", model, model, rows)


def sklearn_pipeline_regressor(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_ridge"), value_of(request, "flv_diabetes_rows")
    return Case("sklearn", model, rows, model.predict(rows))


def sklearn_joblib_file(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_logreg"), value_of(request, "flv_iris_rows")
    return _classifier("sklearn", model, value_of(request, "flv_files")["joblib"], rows)


def onnx_zipmap_proto(request: pytest.FixtureRequest) -> Case:
    rows = value_of(request, "flv_iris_rows")
    path = value_of(request, "flv_onnx_files")["zipmap"]
    labels, zipmap = _onnx_run(path, rows.to_numpy())
    classes = list(zipmap[0])
    proba = np.array([[row[c] for c in classes] for row in zipmap])
    source = value_of(request, "flv_onnx")["zipmap"]
    return Case("onnx", source, rows, labels, proba, classes, tolerance=1e-6)


def onnx_tensor_string_labels(request: pytest.FixtureRequest) -> Case:
    rows = value_of(request, "flv_iris_rows")
    path = value_of(request, "flv_onnx_files")["tensor"]
    labels, proba = _onnx_run(path, rows.to_numpy())
    classes = value_of(request, "flv_forest").classes_.tolist()
    return Case("onnx", path, rows, labels, proba, classes, tolerance=1e-6)


def onnx_regressor(request: pytest.FixtureRequest) -> Case:
    rows = value_of(request, "flv_diabetes_rows")
    path = value_of(request, "flv_onnx_files")["regressor"]
    (values,) = _onnx_run(path, rows.to_numpy())
    return Case("onnx", path, rows, values.reshape(-1), tolerance=1e-6)


def xgboost_classifier(request: pytest.FixtureRequest) -> Case:
    model, rows = (
        value_of(request, "flv_xgb_classifier"),
        value_of(request, "flv_iris_rows"),
    )
    return _classifier("xgboost", model, model, rows)


def xgboost_binary(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_xgb_binary"), value_of(request, "flv_iris_rows")
    return _classifier("xgboost", model, model, rows)


def xgboost_booster(request: pytest.FixtureRequest) -> Case:
    import xgboost as xgb

    booster, rows = (
        value_of(request, "flv_xgb_booster"),
        value_of(request, "flv_diabetes_rows"),
    )
    return Case("xgboost", booster, rows, booster.predict(xgb.DMatrix(rows)))


def xgboost_ubj_file(request: pytest.FixtureRequest) -> Case:
    import xgboost as xgb

    booster, rows = (
        value_of(request, "flv_xgb_booster"),
        value_of(request, "flv_diabetes_rows"),
    )
    path = value_of(request, "flv_files")["xgb_ubj"]
    return Case("xgboost", path, rows, booster.predict(xgb.DMatrix(rows)))


def lightgbm_classifier(request: pytest.FixtureRequest) -> Case:
    model = value_of(request, "flv_lgbm_classifier")
    rows = value_of(request, "flv_iris_snake_rows")
    return _classifier("lightgbm", model, model, rows)


def lightgbm_binary(request: pytest.FixtureRequest) -> Case:
    model, rows = (
        value_of(request, "flv_lgbm_binary"),
        value_of(request, "flv_iris_snake_rows"),
    )
    return _classifier("lightgbm", model, model, rows)


def lightgbm_booster(request: pytest.FixtureRequest) -> Case:
    booster, rows = (
        value_of(request, "flv_lgb_booster"),
        value_of(request, "flv_diabetes_rows"),
    )
    return Case("lightgbm", booster, rows, booster.predict(rows.to_numpy()))


def lightgbm_text_file(request: pytest.FixtureRequest) -> Case:
    booster, rows = (
        value_of(request, "flv_lgb_booster"),
        value_of(request, "flv_diabetes_rows"),
    )
    path = value_of(request, "flv_files")["lgb_booster"]
    return Case("lightgbm", path, rows, booster.predict(rows.to_numpy()))


def mlflow_sklearn_skops(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_logreg"), value_of(request, "flv_iris_rows")
    return _classifier("mlflow", model, value_of(request, "flv_mlflow_sklearn"), rows)


def mlflow_sklearn_cloudpickle(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_ridge"), value_of(request, "flv_diabetes_rows")
    return Case("mlflow", value_of(request, "flv_mlflow_cloudpickle"), rows, model.predict(rows))


def mlflow_pyfunc(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_logreg"), value_of(request, "flv_iris_rows")
    return Case("mlflow", value_of(request, "flv_mlflow_pyfunc"), rows, model.predict(rows))


def mlflow_onnx(request: pytest.FixtureRequest) -> Case:
    onnx_case = onnx_zipmap_proto(request)
    source = value_of(request, "flv_mlflow_onnx")
    return Case(
        "mlflow",
        source,
        onnx_case.example,
        onnx_case.predictions,
        onnx_case.probabilities,
        onnx_case.classes,
        onnx_case.tolerance,
    )


def custom_predictor(request: pytest.FixtureRequest) -> Case:
    model, rows = value_of(request, "flv_logreg"), value_of(request, "flv_iris_rows")
    return _classifier("custom", model, f"{value_of(request, 'flv_custom')}:IrisPredictor", rows)


CASES: dict[str, Builder] = {
    builder.__name__: builder
    for builder in (
        sklearn_logreg,
        sklearn_forest_strings,
        sklearn_pipeline_regressor,
        sklearn_joblib_file,
        onnx_zipmap_proto,
        onnx_tensor_string_labels,
        onnx_regressor,
        xgboost_classifier,
        xgboost_binary,
        xgboost_booster,
        xgboost_ubj_file,
        lightgbm_classifier,
        lightgbm_binary,
        lightgbm_booster,
        lightgbm_text_file,
        mlflow_sklearn_skops,
        mlflow_sklearn_cloudpickle,
        mlflow_pyfunc,
        mlflow_onnx,
        custom_predictor,
    )
}


def assert_same(got: Any, want: Any, tolerance: float) -> None:
    """Exact for labels (ints, strings, bools), relative+absolute tolerance for floats."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    if want.dtype.kind == "f" or got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    else:
        assert got.tolist() == want.tolist()
