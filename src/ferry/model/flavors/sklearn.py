"""scikit-learn estimators and pipelines: pickle, joblib, and skops files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferry.errors import FlavorError, MissingDependency
from ferry.model.flavors import Flavor, PickleFiles, SavedArtifact, copy_model_file, library_version
from ferry.model.signature import Batch, ColumnSpec

_PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".sav"}


class SklearnPredictor:
    """Calls the estimator with a plain array when it only uses column names to check them.

    scikit-learn's DataFrame path costs ~0.6 ms per call against ~0.1 ms for an array, so an
    estimator fitted on a DataFrame of numbers is called with an array in signature order (the
    same columns, validated by Ferry) once its stored names are dropped. Estimators that select
    columns by name (ColumnTransformer) or run arbitrary code on the frame keep the DataFrame.
    """

    def __init__(self, estimator: Any) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise FlavorError(
                f"the loaded object ({type(estimator).__qualname__}) has no predict() method",
                type=type(estimator).__qualname__,
            )
        self.estimator = estimator
        names = getattr(estimator, "feature_names_in_", None)
        self._feature_names: list[str] | None = None if names is None else [str(n) for n in names]
        n_features = getattr(estimator, "n_features_in_", None)
        self._n_features: int | None = None if n_features is None else int(n_features)
        classes = getattr(estimator, "classes_", None)
        self._classes: list[Any] | None = None if classes is None else np.asarray(classes).tolist()
        self._has_proba = hasattr(estimator, "predict_proba")
        self._wants_frame = self._feature_names is not None and not _drop_feature_names(estimator)

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        if self._feature_names is not None:
            return [ColumnSpec(name=name, dtype="float64") for name in self._feature_names]
        if self._n_features is not None:
            return [ColumnSpec(name=f"f{i}", dtype="float64") for i in range(self._n_features)]
        return None

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    @property
    def has_proba(self) -> bool:
        return self._has_proba

    def _features(self, batch: Batch) -> Any:
        if self._wants_frame:
            return batch.to_frame()[self._feature_names]
        if self._feature_names is not None:
            return _matrix(batch, self._feature_names)
        return batch.to_matrix()

    def predict(self, batch: Batch) -> np.ndarray:
        return np.asarray(self.estimator.predict(self._features(batch)))

    def predict_proba(self, batch: Batch) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self._features(batch)))


class SklearnFlavor:
    name = "sklearn"

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        """The model file, read by joblib.load, unless it is skops (which loads no pickle)."""
        if options.get("format") != "skops" and artifact.suffix.lower() != ".skops":
            yield artifact, "joblib"

    def detect(self, path: Path) -> bool:
        return path.is_file() and (
            path.suffix.lower() in _PICKLE_SUFFIXES or path.suffix == ".skops"
        )

    def accepts(self, obj: object) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:  # pragma: no cover - scikit-learn is a core dependency
            return False
        return isinstance(obj, BaseEstimator)

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        libraries = {"scikit-learn": library_version("scikit-learn")}
        if isinstance(source, Path):
            fmt = _format_of(source)
            if fmt == "skops":
                libraries["skops"] = library_version("skops")
            return SavedArtifact(copy_model_file(source, model_dir), {"format": fmt}, libraries)
        import joblib

        target = model_dir / "model.joblib"
        joblib.dump(source, target)
        return SavedArtifact(target.name, {"format": "joblib"}, libraries)

    def load(self, artifact: Path, options: Mapping[str, str]) -> SklearnPredictor:
        fmt = options.get("format") or _format_of(artifact)
        if fmt == "skops":
            trusted = [t for t in options.get("trusted", "").split(",") if t]
            return SklearnPredictor(_load_skops(artifact, trusted))
        import joblib

        try:
            estimator = joblib.load(artifact)
        except (OSError, EOFError, ValueError, ImportError, AttributeError) as exc:
            raise FlavorError(
                f"cannot load {artifact.name} as a scikit-learn {fmt}: {exc}", path=str(artifact)
            ) from exc
        return SklearnPredictor(estimator)


def _matrix(batch: Batch, names: list[str]) -> np.ndarray:
    columns = batch.columns
    if list(columns) == names:
        return batch.to_matrix()
    return np.column_stack([columns[name] for name in names])


# estimators whose fitted state only uses feature names to check them, by module
_ARRAY_SAFE_MODULES = (
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.naive_bayes",
    "sklearn.discriminant_analysis",
    "sklearn.neural_network",
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.decomposition",
    "sklearn.feature_selection",
    "sklearn.kernel_approximation",
    "sklearn.cluster",
    "sklearn.gaussian_process",
    "sklearn.isotonic",
    "sklearn.cross_decomposition",
    "sklearn.multiclass",
    "sklearn.calibration",
)
_FRAME_ONLY = {
    "ColumnTransformer",
    "FunctionTransformer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "TargetEncoder",
}


def _drop_feature_names(estimator: Any) -> bool:
    """Forget the fitted column names when the estimator computes the same on an array.

    Only the first step of a pipeline receives our input, so only it needs checking (later
    steps see what earlier ones produce). Returns False, changing nothing, when unsure.
    """
    first = estimator
    while type(first).__name__ == "Pipeline" and type(first).__module__.startswith("sklearn."):
        steps = getattr(first, "steps", None)
        if not steps:
            return False
        first = steps[0][1]
        if getattr(first, "set_output", None) and _outputs_frames(estimator):
            return False
    kind = type(first)
    if kind.__name__ in _FRAME_ONLY or not kind.__module__.startswith(_ARRAY_SAFE_MODULES):
        return False
    if "feature_names_in_" not in vars(first):
        return False
    del first.feature_names_in_
    return True


def _outputs_frames(estimator: Any) -> bool:
    """A pipeline configured with set_output(transform="pandas") passes frames between steps."""
    config = getattr(estimator, "_sklearn_output_config", {})
    return bool(config.get("transform") == "pandas")


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".skops":
        return "skops"
    return "joblib" if suffix == ".joblib" else "pickle"


def _load_skops(path: Path, trusted: list[str]) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingDependency(
            "loading a .skops file needs skops: pip install 'ferry-ml[skops]'"
        ) from exc
    found = sio.get_untrusted_types(file=path)
    unknown = skops_untrusted(found, trusted)
    if unknown:
        raise FlavorError(
            f"{path.name} contains types that are not trusted: {unknown}; trust them "
            "explicitly (ferry save --trust-type TYPE) if you know where the file came from",
            untrusted=unknown,
        )
    return sio.load(path, trusted=found)


# --- which skops types load -------------------------------------------------------------------
# skops loads the types it trusts itself (scikit-learn's estimators, numpy and scipy data);
# ``get_untrusted_types`` lists the rest, and a schema may name any callable there: a node
# ``builtins.exec`` with a string argument runs it. None of those is trusted by prefix: only
# what the user names, and classes proven to be data (``_skops_data_type``).
# wheel_runtime.py holds an identical copy of this block (the wheel cannot import ferry);
# tests/unit/model/test_skops_types.py checks that the two stay the same.
_SKOPS_LIBRARIES = ("sklearn", "numpy", "scipy")
_SKOPS_EXACT = frozenset({"collections.OrderedDict", "collections.defaultdict"})
# Python methods a skops load may run on such a class (ObjectNode: __new__ then __setstate__;
# a reduce node: __init__ then __setstate__), each read: they only set attributes
_SKOPS_REVIEWED = frozenset(
    {
        "sklearn.base.BaseEstimator.__setstate__",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor.__init__",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor.__setstate__",
        "sklearn.isotonic.IsotonicRegression.__setstate__",
        "sklearn.utils._bunch.Bunch.__init__",
        "sklearn.utils._bunch.Bunch.__setstate__",
    }
)


def skops_untrusted(found: list[str], trusted: list[str]) -> list[str]:
    """The types of ``found`` (skops' untrusted list) that may not load."""
    allowed = set(trusted) | _SKOPS_EXACT
    return [name for name in found if name not in allowed and not _skops_data_type(name)]


def _skops_data_type(dotted: str) -> bool:
    """A class of scikit-learn, numpy or scipy, named by its own module and name (no
    re-export), whose Python constructors and ``__setstate__`` only store values. Only those
    libraries' modules are imported to tell; a function (exec, eval, open) is never one."""
    import importlib
    import inspect

    module_name, _, name = dotted.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in _SKOPS_LIBRARIES or "tests" in parts or not name.isidentifier():
        return False
    if not all(part.isidentifier() for part in parts):
        return False
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return False
    if not isinstance(obj, type) or f"{obj.__module__}.{obj.__qualname__}" != dotted:
        return False
    estimator = any(
        (base.__module__, base.__qualname__) == ("sklearn.base", "BaseEstimator")
        for base in obj.__mro__
    )
    for method in ("__new__", "__init__", "__setstate__"):
        function = getattr(obj, method, None)
        if not inspect.isfunction(function) or (estimator and method == "__init__"):
            continue  # C code, or an estimator's __init__ (by scikit-learn's rule, it stores)
        if f"{function.__module__}.{function.__qualname__}" not in _SKOPS_REVIEWED:
            return False
    return True


FLAVOR: Flavor = SklearnFlavor()
