"""Whether loading a model runs code of its own, or only reads data.

*Data* formats are read by a library that only interprets them: a pickle the scanner proves
harmless, a skops file with an allowlist of named types, ONNX, XGBoost and LightGBM's native
files. *Code* formats run the uploader's Python when loaded: a custom class (``file.py:Class``,
a bundle of flavor ``custom``) and an MLflow ``python_function`` model (its ``loader_module``
is imported, its ``code`` paths put on ``sys.path``, its ``python_model`` unpickled). A code
model runs only after an explicit trust decision. Nothing here imports or loads the model: the
verdict comes from file names, the manifest and the MLmodel YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CUSTOM_SOURCE = ".py:"


@dataclass(frozen=True, slots=True)
class ModelKind:
    """``reasons`` says why the model is code (empty: it is data)."""

    reasons: tuple[str, ...] = ()

    @property
    def is_code(self) -> bool:
        return bool(self.reasons)


DATA = ModelKind()


def classify(source: str | Path, flavor: str | None = None) -> ModelKind:
    """The kind of the model at ``source``: a bundle folder, a model file, an MLflow folder
    (or its ``MLmodel`` file), or a ``file.py:Class`` spec."""
    from ferry.model.manifest import MANIFEST_FILE, read_manifest

    text = str(source)
    if CUSTOM_SOURCE in text and not Path(text).exists():
        return ModelKind((f"{text} is a Python class",))
    path = Path(source)
    if flavor == "custom" or path.suffix == ".py":
        return ModelKind((f"{path.name} is Python code",))
    if path.is_file():
        return _mlflow_kind(path.parent, None) if path.name == "MLmodel" else DATA
    if not path.is_dir():
        return DATA
    if (path / MANIFEST_FILE).is_file():
        manifest = read_manifest(path)
        if manifest.flavor == "custom":
            return ModelKind((f"the bundle's model is a Python class ({manifest.artifact})",))
        if manifest.flavor == "mlflow":
            return _mlflow_kind(path / manifest.artifact, manifest.flavor_options.get("inner"))
        return DATA
    if (path / "MLmodel").is_file():
        return _mlflow_kind(path, None)
    return DATA


def _mlflow_kind(root: Path, inner: str | None) -> ModelKind:
    """An MLflow folder is code when Ferry would load it through ``mlflow.pyfunc``."""
    from ferry.model.flavors.mlflow import PYFUNC, MLflowFlavor

    root = root.parent if root.is_file() else root
    try:
        mlmodel: Any = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return DATA  # unreadable: the flavor refuses it when it loads, before any code runs
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict):
        return DATA
    chosen = inner or MLflowFlavor.preferred(flavors)
    if chosen != PYFUNC:
        return DATA
    conf = flavors.get(PYFUNC)
    conf = conf if isinstance(conf, dict) else {}
    reasons = [f"an MLflow python_function model (loader_module {conf.get('loader_module')!r})"]
    if conf.get("code"):
        reasons.append(f"with code paths {conf.get('code')!r}")
    if conf.get("python_model"):
        reasons.append(f"with a pickled python_model {conf.get('python_model')!r}")
    return ModelKind(tuple(reasons))
