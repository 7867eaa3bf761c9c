"""MLflow model folders (an ``MLmodel`` file plus the model's data).

The ``MLmodel`` YAML is read with PyYAML; scikit-learn, ONNX, XGBoost and LightGBM models are
loaded by Ferry's own flavors, so they need no mlflow. Anything else goes through
``mlflow.pyfunc.load_model``, which does. Inputs come from the MLmodel's signature when it has
one, else from the loaded model.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ferry.errors import FlavorError, MissingDependency
from ferry.model.flavors import (
    PICKLE_SUFFIXES,
    Flavor,
    PickleFiles,
    Predictor,
    SavedArtifact,
    get_flavor,
    has_pickle_header,
    library_version,
)
from ferry.model.signature import Batch, ColumnSpec, DType, dtype_of

MLMODEL_FILE = "MLmodel"
PYFUNC = "python_function"
# MLflow flavors Ferry loads natively, in the order they are preferred
_NATIVE = ("sklearn", "onnx", "xgboost", "lightgbm")
_COLUMN_TYPES: dict[str, DType] = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "string",
    "binary": "string",
    "datetime": "string",
}
_LIBRARIES: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn",),
    "onnx": ("onnxruntime", "onnx"),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    PYFUNC: ("cloudpickle",),
}
_INSTALL = "pip install 'ferry-ml[mlflow]'"


class MLflowPredictor:
    """The inner model (a Ferry flavor or an MLflow pyfunc) with the MLmodel's declared inputs."""

    def __init__(self, inner: Predictor, declared: list[ColumnSpec] | None) -> None:
        self.inner = inner
        self._declared = declared

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return self._declared if self._declared is not None else self.inner.declared_inputs

    @property
    def classes(self) -> list[Any] | None:
        return self.inner.classes

    @property
    def has_proba(self) -> bool:
        return self.inner.has_proba

    def predict(self, batch: Batch) -> np.ndarray:
        return self.inner.predict(batch)

    def predict_proba(self, batch: Batch) -> np.ndarray:
        return self.inner.predict_proba(batch)


class PyfuncPredictor:
    """``mlflow.pyfunc`` model: a DataFrame for column inputs, arrays for tensor inputs."""

    def __init__(self, model: Any, unnamed_tensor: bool) -> None:
        self.model = model
        self.unnamed_tensor = unnamed_tensor

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return None

    @property
    def classes(self) -> list[Any] | None:
        return None

    @property
    def has_proba(self) -> bool:
        return False

    def predict(self, batch: Batch) -> np.ndarray:
        if all(array.ndim == 1 for array in batch.columns.values()):
            data: Any = batch.to_frame()
        elif self.unnamed_tensor and len(batch.columns) == 1:
            data = next(iter(batch.columns.values()))
        else:
            data = dict(batch.columns)
        return np.asarray(self.model.predict(data))

    def predict_proba(self, batch: Batch) -> np.ndarray:
        raise FlavorError("an MLflow python_function model has no predict_proba")


class MLflowFlavor:
    name = "mlflow"

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        """Ferry reads an MLflow model's scikit-learn (and pickled LightGBM) file with joblib;
        any other pickle in the folder (a pyfunc's cloudpickle) is read by pickle."""
        root = artifact.parent if artifact.name == "MLmodel" else artifact
        loaded_by_joblib: set[Path] = set()
        try:
            mlmodel = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            mlmodel = None
        flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
        if isinstance(flavors, dict):
            sklearn = flavors.get("sklearn")
            if isinstance(sklearn, dict) and sklearn.get("serialization_format") != "skops":
                loaded_by_joblib.add(root / str(sklearn.get("pickled_model", "model.pkl")))
            lightgbm = flavors.get("lightgbm")
            if isinstance(lightgbm, dict) and str(lightgbm.get("data", "")).endswith(".pkl"):
                loaded_by_joblib.add(root / str(lightgbm["data"]))
        for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            if file in loaded_by_joblib:
                yield file, "joblib"
            elif file.suffix.lower() in PICKLE_SUFFIXES or has_pickle_header(file):
                yield file, "joblib" if file.suffix.lower() == ".joblib" else "pickle"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return path.name == MLMODEL_FILE
        return path.is_dir() and (path / MLMODEL_FILE).is_file()

    def accepts(self, obj: object) -> bool:
        return False  # MLflow models are folders on disk

    @staticmethod
    def preferred(flavors: Mapping[str, Any]) -> str | None:
        """The flavor Ferry loads from an MLmodel's ``flavors``: a native one first."""
        return next((name for name in (*_NATIVE, PYFUNC) if name in flavors), None)

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        if not isinstance(source, Path) or not self.detect(source):
            raise FlavorError(f"{source} is not an MLflow model folder (no {MLMODEL_FILE})")
        root = _root(source)
        mlmodel = read_mlmodel(root)
        inner = _inner_flavor(mlmodel, None)
        name = root.resolve().name or "mlflow_model"
        shutil.copytree(root, model_dir / name, ignore=shutil.ignore_patterns("__pycache__"))
        return SavedArtifact(name, {"inner": inner}, _libraries(inner, mlmodel))

    def load(self, artifact: Path, options: Mapping[str, str]) -> MLflowPredictor:
        root = _root(artifact)
        mlmodel = read_mlmodel(root)
        inner = _inner_flavor(mlmodel, options.get("inner"))
        declared, unnamed_tensor = _signature_inputs(mlmodel)
        if inner == PYFUNC:
            return MLflowPredictor(PyfuncPredictor(_load_pyfunc(root), unnamed_tensor), declared)
        conf: dict[str, Any] = mlmodel["flavors"][inner]
        flavor, path, flavor_options = _native(inner, conf, root)
        if not path.exists():
            raise FlavorError(f"{root.name}/{MLMODEL_FILE} names {path.name}, which is missing")
        return MLflowPredictor(get_flavor(flavor).load(path, flavor_options), declared)


def read_mlmodel(root: Path) -> dict[str, Any]:
    path = root / MLMODEL_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlavorError(f"cannot read {path}: {exc}", path=str(path)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise FlavorError(f"{path} has no 'flavors' section", path=str(path))
    return data


def _root(path: Path) -> Path:
    return path.parent if path.is_file() and path.name == MLMODEL_FILE else path


def _inner_flavor(mlmodel: Mapping[str, Any], chosen: str | None) -> str:
    flavors: Mapping[str, Any] = mlmodel["flavors"]
    if chosen:
        if chosen not in flavors:
            raise FlavorError(
                f"this MLflow model has no {chosen!r} flavor; it has {sorted(flavors)}"
            )
        return chosen
    preferred = MLflowFlavor.preferred(flavors)
    if preferred is not None:
        return preferred
    raise FlavorError(
        f"this MLflow model has flavors {sorted(flavors)}; Ferry loads {[*_NATIVE, PYFUNC]}",
        flavors=sorted(flavors),
    )


def _native(inner: str, conf: Mapping[str, Any], root: Path) -> tuple[str, Path, dict[str, str]]:
    """The Ferry flavor, model file and flavor options for an MLflow native flavor."""
    if inner == "sklearn":
        return "sklearn", root / str(conf.get("pickled_model", "model.pkl")), _pickle_options(conf)
    data = root / str(conf.get("data", ""))
    if inner == "lightgbm" and data.suffix.lower() in (".pkl", ".skops"):
        return "sklearn", data, _pickle_options(conf)  # an LGBM sklearn-API model, pickled
    return inner, data, {}


def _pickle_options(conf: Mapping[str, Any]) -> dict[str, str]:
    fmt = str(conf.get("serialization_format") or "cloudpickle")
    if fmt == "skops":
        trusted = conf.get("skops_trusted_types") or []
        return {"format": "skops", "trusted": ",".join(str(t) for t in trusted)}
    if fmt == "cloudpickle" and importlib.util.find_spec("cloudpickle") is None:
        # cloudpickled objects import cloudpickle when unpickled
        raise MissingDependency(f"this MLflow model was saved with cloudpickle: {_INSTALL}")
    return {"format": "pickle"}


def _load_pyfunc(root: Path) -> Any:
    try:
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise MissingDependency(f"this MLflow model needs mlflow: {_INSTALL}") from exc
    try:
        return mlflow.pyfunc.load_model(str(root))
    except (MlflowException, ImportError, OSError, pickle.UnpicklingError, AttributeError) as exc:
        raise FlavorError(
            f"cannot load the MLflow model {root.name}: {exc}", path=str(root)
        ) from exc


def _signature_inputs(mlmodel: Mapping[str, Any]) -> tuple[list[ColumnSpec] | None, bool]:
    """Inputs from ``signature.inputs``; (None, False) when absent or not tabular/tensor."""
    signature = mlmodel.get("signature")
    raw = signature.get("inputs") if isinstance(signature, dict) else None
    if not raw:
        return None, False
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None, False
    if not isinstance(specs, list):
        return None, False
    columns: list[ColumnSpec] = []
    unnamed_tensor = False
    for index, spec in enumerate(specs):
        column = _column(spec, index) if isinstance(spec, dict) else None
        if column is None:
            return None, False
        unnamed_tensor = unnamed_tensor or (spec.get("type") == "tensor" and "name" not in spec)
        columns.append(column)
    return columns, unnamed_tensor


def _column(spec: Mapping[str, Any], index: int) -> ColumnSpec | None:
    name = str(spec.get("name", index if spec.get("type") != "tensor" else "input"))
    required = bool(spec.get("required", True))
    kind = spec.get("type")
    if kind == "tensor":
        tensor = spec.get("tensor-spec") or {}
        try:
            dtype = dtype_of(np.empty(0, dtype=np.dtype(str(tensor.get("dtype")))))
        except TypeError:
            return None
        shape = [int(d) for d in tensor.get("shape", [-1])[1:]]
        return ColumnSpec(name=name, dtype=dtype, shape=shape, required=required)
    if kind not in _COLUMN_TYPES:
        return None  # array/object/map/any columns: leave it to the loaded model
    return ColumnSpec(name=name, dtype=_COLUMN_TYPES[str(kind)], required=required)


def _libraries(inner: str, mlmodel: Mapping[str, Any]) -> dict[str, str]:
    names = list(_LIBRARIES.get(inner, ()))
    conf = mlmodel["flavors"].get(inner) or {}
    if conf.get("serialization_format") == "skops":
        names.append("skops")
    libraries = {name: version for name in names if (version := library_version(name))}
    if inner == PYFUNC:
        for dist in ("mlflow", "mlflow-skinny"):
            if version := library_version(dist):
                libraries[dist] = version
                break
        else:
            libraries["mlflow"] = str(mlmodel.get("mlflow_version", ""))
    return libraries


FLAVOR: Flavor = MLflowFlavor()
