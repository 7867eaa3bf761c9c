"""XGBoost models: native ``.json``/``.ubj``/``.bst``/``.xgb`` files, Boosters, sklearn-API models.

Classifier objectives answer class labels from ``predict`` and probabilities from
``predict_proba``, as ``XGBClassifier`` does; other objectives answer the booster's raw output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferry.errors import FlavorError, MissingDependency
from ferry.model.flavors import (
    Flavor,
    PickleFiles,
    SavedArtifact,
    copy_model_file,
    instance_of,
    library_version,
)
from ferry.model.signature import Batch, ColumnSpec, DType

_SUFFIXES = {".json", ".ubj", ".bst", ".xgb"}
_BINARY = {"binary:logistic", "binary:logitraw", "binary:hinge"}
_MULTICLASS = {"multi:softprob", "multi:softmax"}
_INSTALL = "pip install 'ferry-ml[xgboost]'"


class XGBoostPredictor:
    """A Booster fed with a DMatrix whose columns follow the booster's feature order."""

    def __init__(self, booster: Any, objective: str, classes: list[Any] | None) -> None:
        self.booster = booster
        self.objective = objective
        self._classes = classes
        names = booster.feature_names
        self._named = names is not None
        self._types = booster.feature_types
        self._features: list[str] = (
            [str(n) for n in names] if names is not None
            else [f"f{i}" for i in range(booster.num_features())]
        )  # fmt: skip
        types = booster.feature_types or []
        self._dtypes: list[DType] = [
            "int64" if kind in ("int", "i") else "float64" for kind in types
        ] or ["float64"] * len(self._features)

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return [
            ColumnSpec(name=name, dtype=dtype)
            for name, dtype in zip(self._features, self._dtypes, strict=False)
        ]

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    @property
    def has_proba(self) -> bool:
        return self._classes is not None and self.objective != "binary:hinge"

    def predict(self, batch: Batch) -> np.ndarray:
        if self._classes is None:
            return np.asarray(self._raw(batch))
        labels = np.asarray(self._classes)
        if self.objective in ("binary:hinge", "multi:softmax"):
            return np.asarray(labels[np.asarray(self._raw(batch)).astype(np.int64)])
        return np.asarray(labels[np.argmax(self.predict_proba(batch), axis=1)])

    def predict_proba(self, batch: Batch) -> np.ndarray:
        if not self.has_proba:
            raise FlavorError(
                f"an XGBoost model with objective {self.objective!r} has no probabilities"
            )
        if self.objective == "multi:softmax":
            margins = np.asarray(self._raw(batch, output_margin=True), dtype=np.float64)
            exp = np.exp(margins - margins.max(axis=1, keepdims=True))
            return np.asarray(exp / exp.sum(axis=1, keepdims=True))
        raw = np.asarray(self._raw(batch))  # float32, as XGBClassifier computes it
        if self.objective in _MULTICLASS:
            return raw.astype(np.float64)
        positive = 1.0 / (1.0 + np.exp(-raw)) if self.objective == "binary:logitraw" else raw
        return np.column_stack([1.0 - positive, positive]).astype(np.float64)

    def _raw(self, batch: Batch, *, output_margin: bool = False) -> Any:
        import xgboost as xgb

        matrix = _matrix(batch, self._features)
        dmatrix = xgb.DMatrix(
            matrix,
            feature_names=self._features if self._named else None,
            feature_types=self._types,
        )
        return self.booster.predict(dmatrix, output_margin=output_margin)


class XGBoostFlavor:
    name = "xgboost"

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        return iter(())  # XGBoost's own JSON or UBJSON model

    def detect(self, path: Path) -> bool:
        if not path.is_file():
            return False
        suffix = path.suffix.lower()
        if suffix == ".json":
            return _is_xgboost_json(path)
        return suffix in _SUFFIXES

    def accepts(self, obj: object) -> bool:
        return instance_of(obj, "xgboost", ("Booster", "XGBModel"))

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        libraries = {"xgboost": library_version("xgboost")}
        if isinstance(source, Path):
            return SavedArtifact(copy_model_file(source, model_dir), {}, libraries)
        xgb = _import_xgboost()
        target = model_dir / "model.json"
        options: dict[str, str] = {}
        if isinstance(source, xgb.XGBModel):
            try:
                booster = source.get_booster()
            except xgb.core.XGBoostError as exc:  # NotFittedError in older releases
                raise FlavorError(f"cannot save an unfitted {type(source).__name__}") from exc
            classes = getattr(source, "classes_", None)
            if classes is not None:
                options["classes"] = json.dumps(np.asarray(classes).tolist())
        else:
            booster = source
        booster.save_model(str(target))
        options["objective"] = _objective(booster)
        return SavedArtifact(target.name, options, libraries)

    def load(self, artifact: Path, options: Mapping[str, str]) -> XGBoostPredictor:
        xgb = _import_xgboost()
        booster = xgb.Booster()
        try:
            booster.load_model(str(artifact))
        except xgb.core.XGBoostError as exc:
            raise FlavorError(
                f"cannot load {artifact.name} as an XGBoost model: {exc}", path=str(artifact)
            ) from exc
        objective = options.get("objective") or _objective(booster)
        classes: list[Any] | None = None
        if "classes" in options:
            classes = list(json.loads(options["classes"]))
        elif objective in _BINARY:
            classes = [0, 1]
        elif objective in _MULTICLASS:
            classes = list(range(_num_class(booster)))
        return XGBoostPredictor(booster, objective, classes)


def _import_xgboost() -> Any:
    try:
        import xgboost as xgb
    except ImportError as exc:
        raise MissingDependency(f"XGBoost models need xgboost: {_INSTALL}") from exc
    return xgb


def _config(booster: Any) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(booster.save_config())
    return config


def _objective(booster: Any) -> str:
    return str(_config(booster)["learner"]["objective"]["name"])


def _num_class(booster: Any) -> int:
    return int(_config(booster)["learner"]["learner_model_param"].get("num_class", "0"))


def _is_xgboost_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "learner" in data


def _matrix(batch: Batch, features: list[str]) -> np.ndarray:
    """Columns in the model's feature order when the batch names them, else in batch order."""
    if all(name in batch.columns for name in features):
        columns = [np.asarray(batch.columns[name], dtype=np.float32) for name in features]
        return np.column_stack(columns) if columns else np.empty((batch.n_rows, 0), np.float32)
    return np.asarray(batch.to_matrix(), dtype=np.float32)


FLAVOR: Flavor = XGBoostFlavor()
