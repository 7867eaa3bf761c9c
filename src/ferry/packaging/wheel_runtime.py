"""The loader shipped inside a model wheel (copied in as ``<package>/_runtime.py``).

For scikit-learn models it must run where Ferry is not installed, so it imports nothing from
``ferry``: only the standard library, numpy, and what the model's own requirements bring
(scikit-learn, pandas, skops). Other flavors (ONNX, XGBoost, LightGBM, MLflow, custom) load
through ``ferry.model.load``: their wheels depend on ferry-ml with the flavor's extra.
``model.json`` beside it says where the artifact is and what the signature is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SPEC_FILE = "model.json"
BUNDLE_DIR = "bundle"
_DTYPES = {
    "bool": "bool",
    "int32": "int32",
    "int64": "int64",
    "float32": "float32",
    "float64": "float64",
    "string": "object",
}


class Model:
    """One loaded model version: ``predict(rows)`` and, for classifiers, ``predict_proba``."""

    def __init__(self, package_dir: Path) -> None:
        spec = json.loads((package_dir / SPEC_FILE).read_text(encoding="utf-8"))
        self.name: str = spec["name"]
        self.version: int = spec["version"]
        self.sha256: str = spec["sha256"]
        self.inputs: list[dict[str, Any]] = spec["signature"]["inputs"]
        self.outputs: list[dict[str, Any]] = spec["signature"]["outputs"]
        self.bundle = package_dir / BUNDLE_DIR
        self._ferry: Any = None
        self.estimator: Any = None
        self._frame_columns: list[str] | None = None
        if spec["flavor"] != "sklearn":
            # other flavors: the wheel depends on ferry-ml with that flavor's extra
            from ferry.model import load

            # an installed wheel is Python the user chose to run; the registry scanned and,
            # for code models, trusted this version when it was registered
            self._ferry = load(self.bundle, trust=True)
            return
        self.estimator = _load(self.bundle / spec["artifact"], spec["options"])
        names = getattr(self.estimator, "feature_names_in_", None)
        self._frame_columns = None if names is None else [str(n) for n in names]

    @property
    def columns(self) -> list[str]:
        return [column["name"] for column in self.inputs]

    def features(self, rows: Any) -> Any:
        """Rows (dicts, lists in column order, a dict of columns, or a DataFrame) as the
        estimator's input, each column cast to its signature dtype."""
        columns = _columns(rows, self.inputs)
        if self._frame_columns is not None:
            import pandas as pd

            return pd.DataFrame(columns)[self._frame_columns]
        return np.column_stack([columns[name] for name in self.columns])

    def predict(self, rows: Any) -> list[Any]:
        if self._ferry is not None:
            return self._ferry.predict(_records(rows)).tolist()  # type: ignore[no-any-return]
        return np.asarray(self.estimator.predict(self.features(rows))).tolist()  # type: ignore[no-any-return]

    def predict_proba(self, rows: Any) -> list[list[float]]:
        if self._ferry is not None:
            return self._ferry.predict_proba(_records(rows)).tolist()  # type: ignore[no-any-return]
        if not hasattr(self.estimator, "predict_proba"):
            raise TypeError(f"{self.name} version {self.version} gives no probabilities")
        return np.asarray(self.estimator.predict_proba(self.features(rows))).tolist()  # type: ignore[no-any-return]

    def example(self) -> list[dict[str, Any]]:
        """The input example stored with the version, as rows."""
        split = json.loads((self.bundle / "example.json").read_text(encoding="utf-8"))
        return [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]

    def expected(self) -> dict[str, Any]:
        """What the version answered for its example when it was registered."""
        data: dict[str, Any] = json.loads(
            (self.bundle / "expected.json").read_text(encoding="utf-8")
        )
        return data


def _records(rows: Any) -> Any:
    """Lists in column order are not something Ferry's loader guesses; everything else is."""
    if isinstance(rows, list) and rows and isinstance(rows[0], list | tuple):
        raise ValueError("give rows as dicts (column -> value) or a DataFrame")
    return rows


def _load(artifact: Path, options: Mapping[str, str]) -> Any:
    if options.get("format") == "skops" or artifact.suffix == ".skops":
        import skops.io as sio

        # the same rule as Ferry's own loader: skops' own types, classes proven to be data,
        # and what was trusted at save
        trusted = [t for t in options.get("trusted", "").split(",") if t]
        found = sio.get_untrusted_types(file=artifact)
        unknown = skops_untrusted(found, trusted)
        if unknown:
            raise ValueError(f"{artifact.name} holds types that are not trusted: {unknown}")
        return sio.load(artifact, trusted=found)
    import joblib

    return joblib.load(artifact)


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


def _columns(rows: Any, inputs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    names = [column["name"] for column in inputs]
    raw = _as_columns(rows, names)
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"unknown columns {unknown}; the model takes {names}")
    columns: dict[str, np.ndarray] = {}
    length = len(next(iter(raw.values()))) if raw else 0
    for column in inputs:
        name = column["name"]
        if name not in raw:
            if column.get("required", True):
                raise ValueError(f"missing column {name!r}; the model takes {names}")
            raw[name] = [None] * length
        columns[name] = _cast(list(raw[name]), column)
    return columns


def _as_columns(rows: Any, names: list[str]) -> dict[str, list[Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return {str(k): list(v) for k, v in rows.to_dict("list").items()}
    if isinstance(rows, Mapping):
        return {str(k): list(v) for k, v in rows.items()}
    records = list(rows)
    if not records:
        raise ValueError("no rows to predict")
    if all(isinstance(row, Mapping) for row in records):
        return {name: [row.get(name) for row in records] for name in _keys(records)}
    for row in records:
        if len(row) != len(names):
            raise ValueError(f"a row has {len(row)} values; the model takes {len(names)}: {names}")
    return {name: [row[i] for row in records] for i, name in enumerate(names)}


def _keys(records: list[Mapping[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in records:
        keys.update(dict.fromkeys(row))
    return list(keys)


def _cast(values: list[Any], column: Mapping[str, Any]) -> np.ndarray:
    dtype = _DTYPES[column["dtype"]]
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in values]
    if any(missing) and dtype.startswith(("int", "bool")):
        # missing values in a nullable integer column reach the model as NaN, as in Ferry
        return np.array([math.nan if m else v for v, m in zip(values, missing, strict=True)], float)
    if dtype == "object":
        return np.array(
            [None if m else str(v) for v, m in zip(values, missing, strict=True)], object
        )
    try:
        return np.array([math.nan if m else v for v, m in zip(values, missing, strict=True)], dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {column['name']!r}: {exc}") from exc
