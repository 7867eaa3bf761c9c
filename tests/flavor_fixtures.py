"""Tiny real models of every flavor, fitted on scikit-learn's bundled data sets.

Fixture names start with ``flv_`` so they never shadow the shared fixtures in tests/conftest.py.
Third-party warnings that only the fixture code triggers (MLflow saving a model) are silenced
here, narrowly, by message; the code under test runs with warnings as errors.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

Data = tuple[pd.DataFrame, pd.Series]

# MLflow warns while *writing* models (import-time type-hint notes, "no input example given");
# none of these come from Ferry's code
_MLFLOW_SAVE_WARNINGS = (
    r".*Any type hint is inferred as AnyType",
    r".*An input example was not provided",
    r".*Add type hints to the `predict` method",
)


@contextmanager
def mlflow_writing() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _MLFLOW_SAVE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


@pytest.fixture(scope="session")
def flv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flavor-models")


# --- data ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def flv_iris() -> Data:
    """Iris with scikit-learn's own column names (spaces and parentheses included)."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def flv_iris_names(flv_iris: Data) -> pd.Series:
    """Iris targets as species names (string class labels)."""
    names = np.array(load_iris().target_names)
    return pd.Series(names[flv_iris[1].to_numpy()], name="species")


@pytest.fixture(scope="session")
def flv_iris_rows(flv_iris: Data) -> pd.DataFrame:
    """A few rows of every species: the input example and the comparison rows."""
    return flv_iris[0].iloc[::10].reset_index(drop=True)


def _snake_case(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda c: str(c).replace(" (cm)", "").replace(" ", "_"))


@pytest.fixture(scope="session")
def flv_iris_snake(flv_iris: Data) -> pd.DataFrame:
    """Iris columns as identifiers: LightGBM rewrites names with spaces ("a b" -> "a_b")."""
    return _snake_case(flv_iris[0])


@pytest.fixture(scope="session")
def flv_iris_snake_rows(flv_iris_rows: pd.DataFrame) -> pd.DataFrame:
    return _snake_case(flv_iris_rows)


@pytest.fixture(scope="session")
def flv_diabetes() -> Data:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def flv_diabetes_rows(flv_diabetes: Data) -> pd.DataFrame:
    return flv_diabetes[0].iloc[::40].reset_index(drop=True)


# --- scikit-learn ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def flv_logreg(flv_iris: Data) -> LogisticRegression:
    X, y = flv_iris
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="session")
def flv_ridge(flv_diabetes: Data) -> Pipeline:
    X, y = flv_diabetes
    return make_pipeline(StandardScaler(), Ridge(alpha=0.5)).fit(X, y)


@pytest.fixture(scope="session")
def flv_forest(flv_iris: Data, flv_iris_names: pd.Series) -> RandomForestClassifier:
    model = RandomForestClassifier(n_estimators=8, max_depth=3, random_state=0)
    return model.fit(flv_iris[0], flv_iris_names)


# --- XGBoost, LightGBM -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def flv_xgb_classifier(flv_iris: Data) -> Any:
    import xgboost as xgb

    X, y = flv_iris
    return xgb.XGBClassifier(n_estimators=8, max_depth=2, random_state=0, n_jobs=1).fit(X, y)


@pytest.fixture(scope="session")
def flv_xgb_binary(flv_iris: Data) -> Any:
    """binary:logistic, answering 0/1 (virginica or not)."""
    import xgboost as xgb

    X, y = flv_iris
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2, random_state=0, n_jobs=1)
    return model.fit(X, (y == 2).astype(int))


@pytest.fixture(scope="session")
def flv_xgb_booster(flv_diabetes: Data) -> Any:
    import xgboost as xgb

    X, y = flv_diabetes
    params = {"max_depth": 2, "nthread": 1, "seed": 0}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=8)


@pytest.fixture(scope="session")
def flv_lgbm_classifier(flv_iris_snake: pd.DataFrame, flv_iris_names: pd.Series) -> Any:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(
        n_estimators=8, num_leaves=4, min_child_samples=5, random_state=0, n_jobs=1, verbose=-1
    )
    return model.fit(flv_iris_snake, flv_iris_names)


@pytest.fixture(scope="session")
def flv_lgbm_binary(flv_iris_snake: pd.DataFrame, flv_iris_names: pd.Series) -> Any:
    """objective "binary", with boolean class labels."""
    import lightgbm as lgb

    model = lgb.LGBMClassifier(
        n_estimators=4, num_leaves=4, min_child_samples=5, random_state=0, n_jobs=1, verbose=-1
    )
    return model.fit(flv_iris_snake, flv_iris_names == "virginica")


@pytest.fixture(scope="session")
def flv_lgb_booster(flv_diabetes: Data) -> Any:
    import lightgbm as lgb

    X, y = flv_diabetes
    params = {"objective": "regression", "num_leaves": 4, "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=8)


# --- ONNX ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def flv_onnx(
    flv_logreg: LogisticRegression, flv_forest: RandomForestClassifier, flv_ridge: Pipeline
) -> dict[str, Any]:
    """ModelProtos: a classifier with ZipMap, one without (string labels), a regressor."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    def convert(model: Any, width: int, zipmap: bool | None) -> Any:
        options = {id(model): {"zipmap": zipmap}} if zipmap is not None else None
        types = [("float_input", FloatTensorType([None, width]))]
        return convert_sklearn(model, initial_types=types, options=options, target_opset=17)

    return {
        "zipmap": convert(flv_logreg, 4, True),
        "tensor": convert(flv_forest, 4, False),
        "regressor": convert(flv_ridge, 10, None),
    }


@pytest.fixture(scope="session")
def flv_onnx_files(flv_onnx: dict[str, Any], flv_dir: Path) -> dict[str, Path]:
    paths = {}
    for name, proto in flv_onnx.items():
        path = flv_dir / f"{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        paths[name] = path
    return paths


# --- native files ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def flv_files(
    flv_dir: Path,
    flv_logreg: LogisticRegression,
    flv_xgb_classifier: Any,
    flv_xgb_booster: Any,
    flv_lgbm_classifier: Any,
    flv_lgb_booster: Any,
) -> dict[str, Path]:
    """Model files as users bring them."""
    import skops.io as sio

    paths = {
        "joblib": flv_dir / "iris.joblib",
        "skops": flv_dir / "iris.skops",
        "xgb_json": flv_dir / "xgb_iris.json",
        "xgb_ubj": flv_dir / "xgb_diabetes.ubj",
        "xgb_bst": flv_dir / "xgb_diabetes.bst",
        "lgb_classifier": flv_dir / "lgb_iris.txt",
        "lgb_booster": flv_dir / "lgb_diabetes.txt",
    }
    joblib.dump(flv_logreg, paths["joblib"])
    sio.dump(flv_logreg, paths["skops"])
    flv_xgb_classifier.get_booster().save_model(str(paths["xgb_json"]))
    flv_xgb_booster.save_model(str(paths["xgb_ubj"]))
    paths["xgb_bst"].write_bytes(paths["xgb_ubj"].read_bytes())  # same bytes, legacy suffix
    flv_lgbm_classifier.booster_.save_model(str(paths["lgb_classifier"]))
    flv_lgb_booster.save_model(str(paths["lgb_booster"]))
    return paths


# --- MLflow ----------------------------------------------------------------------------------
def _iris_signature(X: pd.DataFrame) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("double", str(name)) for name in X.columns])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("long")]))


@pytest.fixture(scope="session")
def flv_mlflow_sklearn(flv_dir: Path, flv_logreg: LogisticRegression, flv_iris: Data) -> Path:
    """``mlflow.sklearn.save_model`` with a signature (MLflow's default format: skops)."""
    with mlflow_writing():
        import mlflow.sklearn

        path = flv_dir / "mlflow_sklearn"
        mlflow.sklearn.save_model(flv_logreg, str(path), signature=_iris_signature(flv_iris[0]))
    return path


@pytest.fixture(scope="session")
def flv_mlflow_cloudpickle(flv_dir: Path, flv_ridge: Pipeline) -> Path:
    """``mlflow.sklearn.save_model`` as cloudpickle, without a signature."""
    with mlflow_writing():
        import mlflow.sklearn

        path = flv_dir / "mlflow_cloudpickle"
        mlflow.sklearn.save_model(flv_ridge, str(path), serialization_format="cloudpickle")
    return path


@pytest.fixture(scope="session")
def flv_mlflow_pyfunc(flv_dir: Path, flv_logreg: LogisticRegression, flv_iris: Data) -> Path:
    """``mlflow.pyfunc.save_model(python_model=...)``: only mlflow can load it."""
    with mlflow_writing():
        import mlflow.pyfunc

        class IrisWrapper(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
            """Defined here so cloudpickle stores it by value."""

            def __init__(self, estimator: LogisticRegression) -> None:
                self.estimator = estimator

            def predict(
                self, context: Any, model_input: pd.DataFrame, params: Any = None
            ) -> list[int]:
                return [int(v) for v in self.estimator.predict(model_input)]

        path = flv_dir / "mlflow_pyfunc"
        mlflow.pyfunc.save_model(
            str(path), python_model=IrisWrapper(flv_logreg), signature=_iris_signature(flv_iris[0])
        )
    return path


@pytest.fixture(scope="session")
def flv_mlflow_onnx(flv_dir: Path, flv_onnx_files: dict[str, Path]) -> Path:
    """An MLflow ONNX folder written by hand, with a tensor signature (no mlflow involved)."""
    path = flv_dir / "mlflow_onnx"
    path.mkdir()
    (path / "model.onnx").write_bytes(flv_onnx_files["zipmap"].read_bytes())
    tensor = {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}
    mlmodel = {
        "flavors": {
            "onnx": {"data": "model.onnx", "onnx_version": "1.17.0"},
            "python_function": {"loader_module": "mlflow.onnx", "data": "model.onnx"},
        },
        "signature": {"inputs": json.dumps([{**tensor, "name": "float_input"}])},
    }
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
    return path


# --- custom ----------------------------------------------------------------------------------
PREDICTOR_SOURCE = '''
"""A user's predictor: the estimator lives in a sibling folder named by ``artifacts``."""
from pathlib import Path

import joblib


class IrisPredictor:
    artifacts = "assets"

    def load(self, model_dir):
        self.model = joblib.load(Path(model_dir) / "assets" / "model.joblib")
        self.classes = list(self.model.classes_)

    def predict(self, frame):
        return self.model.predict(frame).tolist()

    def predict_proba(self, frame):
        return self.model.predict_proba(frame)


class Doubler:
    """No load(); takes a dict of arrays when an input is a tensor."""

    def predict(self, inputs):
        if isinstance(inputs, dict):
            return inputs["x"].sum(axis=1) * 2
        return inputs.sum(axis=1) * 2


class Factory:
    """load() returns the object that predicts."""

    artifacts = "assets"

    def load(self, model_dir):
        return joblib.load(Path(model_dir) / "assets" / "model.joblib")
'''


@pytest.fixture(scope="session")
def flv_custom(flv_dir: Path, flv_logreg: LogisticRegression) -> Path:
    """``predictor.py`` next to ``assets/model.joblib``; pass ``f"{path}:IrisPredictor"``."""
    folder = flv_dir / "custom"
    (folder / "assets").mkdir(parents=True)
    joblib.dump(flv_logreg, folder / "assets" / "model.joblib")
    path = folder / "predictor.py"
    path.write_text(PREDICTOR_SOURCE, encoding="utf-8")
    return path
