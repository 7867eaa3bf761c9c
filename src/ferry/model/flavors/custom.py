"""Custom Python models: ``path/to/predictor.py:ClassName``, a class with ``load()``/``predict()``.

The class is instantiated with no arguments; ``load(model_dir)`` is called when present (if it
returns an object with ``predict``, that object is used); ``predict`` gets a DataFrame when every
input is a scalar column, else a dict of numpy arrays. ``predict_proba`` is used when present.
A class attribute ``artifacts = "relative/dir"`` names a folder next to the file to bundle with it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ferry.errors import FlavorError
from ferry.model.flavors import Flavor, PickleFiles, SavedArtifact
from ferry.model.signature import Batch, ColumnSpec


class CustomPredictor:
    def __init__(self, model: Any, source: str) -> None:
        if not callable(getattr(model, "predict", None)):
            raise FlavorError(f"{source} has no predict() method", source=source)
        self.model = model
        self.source = source
        classes = getattr(model, "classes", None)
        if classes is None:
            classes = getattr(model, "classes_", None)  # load() returned an estimator
        self._classes: list[Any] | None = None if classes is None else np.asarray(classes).tolist()

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return None

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self.model, "predict_proba", None))

    def predict(self, batch: Batch) -> np.ndarray:
        return np.asarray(self.model.predict(_inputs(batch)))

    def predict_proba(self, batch: Batch) -> np.ndarray:
        if not self.has_proba:
            raise FlavorError(f"{self.source} has no predict_proba() method", source=self.source)
        return np.asarray(self.model.predict_proba(_inputs(batch)))


class CustomFlavor:
    name = "custom"

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        return iter(())  # code: it runs only after a trust decision, scanned or not

    def detect(self, path: Path) -> bool:
        text = str(path)
        file, _, class_name = text.rpartition(":")
        return ".py:" in text and class_name.isidentifier() and Path(file).is_file()

    def accepts(self, obj: object) -> bool:
        return False  # a custom model is given as "file.py:ClassName", never as an object

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        if not isinstance(source, str | Path) or ".py:" not in str(source):
            raise FlavorError(
                "a custom model is given as 'path/to/predictor.py:ClassName'", got=str(source)
            )
        file, class_name = _split(str(source))
        if not file.is_file():
            raise FlavorError(f"{file} does not exist", path=str(file))
        shutil.copyfile(file, model_dir / file.name)
        options = {"module_file": file.name, "class_name": class_name}
        artifacts = getattr(_import_class(file, class_name), "artifacts", None)
        if artifacts:
            relative = _relative_dir(str(artifacts), file)
            shutil.copytree(file.parent / relative, model_dir / relative)
            options["artifacts"] = relative
        return SavedArtifact(file.name, options, {})

    def load(self, artifact: Path, options: Mapping[str, str]) -> CustomPredictor:
        if "class_name" in options:
            file, class_name = artifact, options["class_name"]
        else:  # a raw "predictor.py:ClassName" given to open_model()
            file, class_name = _split(str(artifact))
        source = f"{file.name}:{class_name}"
        cls = _import_class(file, class_name)
        try:
            instance = cls()
        except TypeError as exc:
            raise FlavorError(
                f"cannot create {source}: the class must take no arguments ({exc})", source=source
            ) from exc
        model: Any = instance
        if callable(getattr(instance, "load", None)):
            try:
                loaded = instance.load(file.parent)
            except (OSError, ImportError, ValueError, KeyError) as exc:
                raise FlavorError(
                    f"{source}.load({file.parent}) failed: {exc}", source=source
                ) from exc
            if callable(getattr(loaded, "predict", None)):
                model = loaded
        return CustomPredictor(model, source)


def _split(text: str) -> tuple[Path, str]:
    file, _, class_name = text.rpartition(":")
    if not class_name.isidentifier():
        raise FlavorError(f"{text!r} must end in ':ClassName' (a Python identifier)", source=text)
    return Path(file), class_name


def _relative_dir(artifacts: str, file: Path) -> str:
    relative = PurePosixPath(artifacts.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not (file.parent / relative).is_dir():
        raise FlavorError(
            f"artifacts {artifacts!r} must name a folder next to {file.name}",
            artifacts=artifacts,
        )
    return relative.as_posix()


class _NoBytecodeLoader(importlib.machinery.SourceFileLoader):
    """Imports without writing ``__pycache__`` next to the file (bundles stay as saved)."""

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        return None


def _import_class(file: Path, class_name: str) -> Any:
    """Import ``file`` under a unique module name and return its ``class_name``."""
    module_name = f"ferry_custom_{file.stem}_{uuid.uuid4().hex[:12]}"
    spec = importlib.util.spec_from_file_location(
        module_name, file, loader=_NoBytecodeLoader(module_name, str(file))
    )
    if spec is None or spec.loader is None:
        raise FlavorError(f"cannot import {file}: not a Python file", path=str(file))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look modules up here
    try:
        spec.loader.exec_module(module)
    except (ImportError, SyntaxError, OSError) as exc:
        del sys.modules[module_name]
        raise FlavorError(f"cannot import {file.name}: {exc}", path=str(file)) from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise FlavorError(f"{file.name} has no class {class_name!r}", path=str(file))
    return cls


def _inputs(batch: Batch) -> Any:
    if all(array.ndim == 1 for array in batch.columns.values()):
        return batch.to_frame()
    return dict(batch.columns)


FLAVOR: Flavor = CustomFlavor()
