"""LightGBM models: native text files, Boosters, and sklearn-API models (``LGBMClassifier`` ...).

Classifier objectives answer class labels from ``predict`` and probabilities from
``predict_proba``, as ``LGBMClassifier`` does; other objectives answer the booster's output.
The booster is always fed a numpy matrix in its feature order (no pandas, no name checks).
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
from ferry.model.signature import Batch, ColumnSpec

_SUFFIXES = {".txt", ".lgb", ".model"}
_BINARY = {"binary"}
_MULTICLASS = {"multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"}
_INSTALL = "pip install 'ferry-ml[lightgbm]'"


class LightGBMPredictor:
    def __init__(
        self, booster: Any, objective: str, classes: list[Any] | None, features: list[str]
    ) -> None:
        self.booster = booster
        self.objective = objective
        self._classes = classes
        self._features = features

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return [ColumnSpec(name=name, dtype="float64") for name in self._features]

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    @property
    def has_proba(self) -> bool:
        return self._classes is not None

    def predict(self, batch: Batch) -> np.ndarray:
        if self._classes is None:
            return np.asarray(self._raw(batch))
        labels = np.asarray(self._classes)
        return np.asarray(labels[np.argmax(self.predict_proba(batch), axis=1)])

    def predict_proba(self, batch: Batch) -> np.ndarray:
        if self._classes is None:
            raise FlavorError(
                f"a LightGBM model with objective {self.objective!r} has no probabilities"
            )
        raw = np.asarray(self._raw(batch), dtype=np.float64)
        if raw.ndim == 1:  # binary: the positive class's probability
            return np.column_stack([1.0 - raw, raw])
        return raw

    def _raw(self, batch: Batch) -> Any:
        return self.booster.predict(_matrix(batch, self._features))


class LightGBMFlavor:
    name = "lightgbm"

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        return iter(())  # LightGBM's own text model

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in _SUFFIXES:
            return False
        try:
            with path.open("rb") as handle:
                head = handle.read(512)
        except OSError:
            return False
        return head.startswith(b"tree") and b"version=" in head

    def accepts(self, obj: object) -> bool:
        return instance_of(obj, "lightgbm", ("Booster", "LGBMModel"))

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        libraries = {"lightgbm": library_version("lightgbm")}
        if isinstance(source, Path):
            return SavedArtifact(copy_model_file(source, model_dir), {}, libraries)
        lgb = _import_lightgbm()
        target = model_dir / "model.txt"
        options: dict[str, str] = {}
        if isinstance(source, lgb.LGBMModel):
            try:
                booster = source.booster_
            except (AttributeError, ValueError) as exc:  # LGBMNotFittedError
                raise FlavorError(f"cannot save an unfitted {type(source).__name__}") from exc
            classes = getattr(source, "classes_", None)
            if classes is not None:
                options["classes"] = json.dumps(np.asarray(classes).tolist())
            names = getattr(source, "feature_names_in_", None)
            if names is not None:  # the booster keeps sanitised names ("a b" -> "a_b")
                options["feature_names"] = json.dumps([str(n) for n in names])
            if isinstance(source.objective_, str):
                options["objective"] = source.objective_
        else:
            booster = source
        booster.save_model(str(target))
        return SavedArtifact(target.name, options, libraries)

    def load(self, artifact: Path, options: Mapping[str, str]) -> LightGBMPredictor:
        lgb = _import_lightgbm()
        try:
            booster = lgb.Booster(model_file=str(artifact))
        except lgb.basic.LightGBMError as exc:
            raise FlavorError(
                f"cannot load {artifact.name} as a LightGBM model: {exc}", path=str(artifact)
            ) from exc
        objective = options.get("objective") or str(booster.params.get("objective", ""))
        objective = objective.split()[0] if objective else ""
        classes: list[Any] | None = None
        if "classes" in options:
            classes = list(json.loads(options["classes"]))
        elif objective in _BINARY:
            classes = [0, 1]
        elif objective in _MULTICLASS:
            classes = list(range(booster.num_model_per_iteration()))
        if "feature_names" in options:
            features = [str(n) for n in json.loads(options["feature_names"])]
        else:
            features = [str(n) for n in booster.feature_name()]
        if len(features) != booster.num_feature():
            raise FlavorError(
                f"{artifact.name} has {booster.num_feature()} features, "
                f"but its options name {len(features)}",
                path=str(artifact),
            )
        return LightGBMPredictor(booster, objective, classes, features)


def _import_lightgbm() -> Any:
    try:
        import lightgbm as lgb
    except ImportError as exc:
        raise MissingDependency(f"LightGBM models need lightgbm: {_INSTALL}") from exc
    return lgb


def _matrix(batch: Batch, features: list[str]) -> np.ndarray:
    """Columns in the model's feature order when the batch names them, else in batch order."""
    if all(name in batch.columns for name in features):
        columns = [np.asarray(batch.columns[name], dtype=np.float64) for name in features]
        return np.column_stack(columns) if columns else np.empty((batch.n_rows, 0))
    return np.asarray(batch.to_matrix(), dtype=np.float64)


FLAVOR: Flavor = LightGBMFlavor()
