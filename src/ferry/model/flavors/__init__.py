"""The Flavor protocol, the flavor table, and detection of a flavor from a file or folder.

A flavor knows how to store one kind of model in a bundle and how to load it back as a
``Predictor``. Each lives in its own module, imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ferry.errors import ConfigError, FlavorError
from ferry.model.signature import Batch, ColumnSpec


class Predictor(Protocol):
    """A loaded model, called with validated batches."""

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        """What the model itself says about its inputs (names, maybe dtypes), if anything."""
        ...

    @property
    def classes(self) -> list[Any] | None:
        """Class labels, in ``predict_proba`` column order, when the model is a classifier."""
        ...

    @property
    def has_proba(self) -> bool: ...

    def predict(self, batch: Batch) -> np.ndarray: ...

    def predict_proba(self, batch: Batch) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SavedArtifact:
    """What a flavor wrote into a bundle's ``model/`` folder."""

    artifact: str  # path of the model file or folder, relative to model/
    options: dict[str, str] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)  # library -> version at save time


# how a pickle file is read: joblib.load (numpy buffers beside the stream) or pickle.load
PickleLoader = Literal["joblib", "pickle"]
PickleFiles = Iterator[tuple[Path, PickleLoader]]
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".sav", ".pck", ".p"})


def has_pickle_header(file: Path) -> bool:
    """A pickle's PROTO opcode (protocol 2-5) opens the file."""
    try:
        with file.open("rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


class Flavor(Protocol):
    name: str

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        """The files loading ``artifact`` would unpickle, each with the loader that reads it:
        the scanner checks exactly these before anything loads (it knows no flavor's files)."""
        ...

    def detect(self, path: Path) -> bool:
        """True when ``path`` (a file or folder the user gave) is a model of this flavor."""
        ...

    def accepts(self, obj: object) -> bool:
        """True when an in-memory object can be saved by this flavor."""
        ...

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        """Write ``source`` (an object, or a Path to a model file/folder) into ``model_dir``."""
        ...

    def load(self, artifact: Path, options: Mapping[str, str]) -> Predictor:
        """Load the model at ``artifact`` (a file or folder) with the options recorded at save."""
        ...


FLAVORS: dict[str, str] = {
    "mlflow": "ferry.model.flavors.mlflow:FLAVOR",
    "custom": "ferry.model.flavors.custom:FLAVOR",
    "onnx": "ferry.model.flavors.onnx:FLAVOR",
    "xgboost": "ferry.model.flavors.xgboost:FLAVOR",
    "lightgbm": "ferry.model.flavors.lightgbm:FLAVOR",
    "sklearn": "ferry.model.flavors.sklearn:FLAVOR",
}


def get_flavor(name: str) -> Flavor:
    """The flavor registered under ``name``; ``ConfigError`` naming the known ones otherwise."""
    if name not in FLAVORS:
        raise ConfigError(f"unknown flavor {name!r}; known flavors: {sorted(FLAVORS)}", flavor=name)
    module, _, attr = FLAVORS[name].partition(":")
    flavor: Flavor = getattr(importlib.import_module(module), attr)
    return flavor


def detect_flavor(path: Path) -> Flavor:
    """The first flavor (in table order) that recognises ``path``."""
    for name in FLAVORS:
        flavor = get_flavor(name)
        if flavor.detect(path):
            return flavor
    raise FlavorError(
        f"cannot tell what kind of model {str(path)!r} is; supported: pickle/joblib/skops "
        "(scikit-learn), .onnx, an MLflow model folder (MLmodel), XGBoost .json/.ubj, "
        "LightGBM .txt, or a Python file 'predictor.py:ClassName'",
        path=str(path),
    )


def flavor_for_object(obj: object) -> Flavor:
    """The flavor that can save an in-memory model object."""
    for name in FLAVORS:
        flavor = get_flavor(name)
        if flavor.accepts(obj):
            return flavor
    raise FlavorError(
        f"cannot save an object of type {type(obj).__module__}.{type(obj).__qualname__}; "
        "give a model file or a supported estimator",
        type=type(obj).__qualname__,
    )


def defined_in(obj: object, library: str) -> bool:
    """True when the object's class or a base class comes from ``library``: a cheap test that
    needs no import of the library (a flavor imports it only for objects that pass)."""
    return any(cls.__module__.split(".")[0] == library for cls in type(obj).__mro__)


def instance_of(obj: object, library: str, class_names: tuple[str, ...]) -> bool:
    """True when ``obj`` is one of ``library``'s ``class_names``; the library is imported only
    for objects whose classes come from it, and a missing library answers False."""
    if not defined_in(obj, library):
        return False
    try:
        module = importlib.import_module(library)
    except ImportError:
        return False
    return isinstance(obj, tuple(getattr(module, name) for name in class_names))


def copy_model_file(source: Path, model_dir: Path) -> str:
    """Copy a model file into the bundle as ``model<suffix>``; returns the new name."""
    import shutil

    target = model_dir / f"model{source.suffix.lower()}"
    shutil.copyfile(source, target)
    return target.name


def library_version(module_name: str) -> str:
    """Installed version of a library, or '' when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module_name)
    except PackageNotFoundError:
        return ""
