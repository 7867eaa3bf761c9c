"""LoadedModel: a bundle (or a raw model file) loaded and ready to predict."""

from __future__ import annotations

import logging
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ferry.errors import FlavorError, UnknownOutput
from ferry.model.bundle import verify_files
from ferry.model.example import example_batch, read_split
from ferry.model.flavors import Predictor, detect_flavor, get_flavor, library_version
from ferry.model.manifest import MANIFEST_FILE, Manifest, read_manifest
from ferry.model.signature import (
    Batch,
    Signature,
    infer_outputs,
    probe_batch,
    to_frame,
)
from ferry.model.validation import batch_from_columns, batch_from_records

log = logging.getLogger(__name__)

OUTPUT_ALIASES: dict[str, str] = {
    "predictions": "predictions",
    "prediction": "predictions",
    "predict": "predictions",
    "label": "predictions",
    "labels": "predictions",
    "probabilities": "probabilities",
    "probability": "probabilities",
    "predict_proba": "probabilities",
    "proba": "probabilities",
}


class LibraryVersionWarning(UserWarning):
    """A library differs from the version the model was saved with."""


@dataclass(slots=True)
class LoadedModel:
    manifest: Manifest
    predictor: Predictor
    root: Path | None  # the bundle folder, None for a raw model file
    example: Batch | None = None
    expected: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version or "1"

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def output_names(self) -> list[str]:
        return [output.name for output in self.signature.outputs]

    def resolve_outputs(self, requested: Sequence[str] | None) -> list[str]:
        """Canonical output names for a request (default: predictions only)."""
        if not requested:
            return ["predictions"]
        names: list[str] = []
        for raw in requested:
            name = OUTPUT_ALIASES.get(raw, raw)
            if name not in self.output_names:
                raise UnknownOutput(
                    f"unknown output {raw!r}; this model has {self.output_names}",
                    output=raw,
                    expected=self.output_names,
                )
            if name not in names:
                names.append(name)
        return names

    def predict_outputs(self, batch: Batch, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run the model for the requested (canonical) outputs."""
        result: dict[str, np.ndarray] = {}
        for name in outputs:
            if name == "probabilities":
                result[name] = self.predictor.predict_proba(batch)
            else:
                result[name] = self.predictor.predict(batch)
        return result

    def to_batch(self, data: Any) -> Batch:
        """Validate in-process input (DataFrame, dict of lists, records, 2-D array) into a batch."""
        if isinstance(data, Batch):
            return data
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return batch_from_records(data, self.signature)
        if not self.signature.is_tabular:
            return batch_from_records(list(np.asarray(data).tolist()), self.signature)
        frame = to_frame(data, columns=self.signature.names)
        columns = {str(name): frame[name].tolist() for name in frame.columns}
        return batch_from_columns(columns, self.signature)

    def predict(self, data: Any) -> np.ndarray:
        return self.predictor.predict(self.to_batch(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        if not self.predictor.has_proba:
            raise UnknownOutput(f"model {self.name!r} has no predict_proba", output="probabilities")
        return self.predictor.predict_proba(self.to_batch(data))


def load(path: str | Path, *, verify: bool = True, trust: bool = False) -> LoadedModel:
    """Load a bundle folder, or open a raw model file/folder (or ``file.py:Class``) as an
    unsaved bundle.

    Its pickles are scanned first and a code model (a custom class, an MLflow
    ``python_function`` folder) is refused: ``UnsafeModel`` unless ``trust=True`` says the
    caller knows where the files came from (``ferry serve --trust``).
    """
    from ferry.model.scanner.scan import LOCAL_HINT, enforce, scan_model

    path = Path(path)
    enforce(scan_model(path, trust=trust), hint=LOCAL_HINT)
    if (path / MANIFEST_FILE).is_file():
        return load_bundle(path, verify=verify)
    return open_model(path)


def load_bundle(
    root: Path,
    *,
    verify: bool = True,
    predictor_of: Callable[[Manifest], Predictor] | None = None,
) -> LoadedModel:
    """The bundle in ``root``: its manifest, example and expected output, and its model loaded
    by its flavor, or by ``predictor_of`` (a model that lives elsewhere, such as a sandbox)."""
    manifest = read_manifest(root)
    if verify:
        verify_files(root, manifest.files)
    warn_library_versions(manifest)
    if predictor_of is None:
        flavor = get_flavor(manifest.flavor)
        predictor = flavor.load(root / manifest.artifact, manifest.flavor_options)
    else:
        predictor = predictor_of(manifest)
    example = expected = None
    if manifest.example:
        example = example_batch(read_split(root / manifest.example), manifest.signature)
    if manifest.expected_output:
        import orjson

        expected = orjson.loads((root / manifest.expected_output).read_bytes())
    return LoadedModel(manifest, predictor, root, example, expected)


def open_model(path: Path, name: str | None = None) -> LoadedModel:
    """A raw model file (``model.pkl``, ``model.onnx``, an MLflow folder, ``file.py:Class``)."""
    flavor = detect_flavor(path)
    predictor = flavor.load(path, {})
    declared = predictor.declared_inputs
    if declared is None:
        raise FlavorError(
            f"{path} does not say what inputs it takes; save it as a bundle with an input "
            "example: ferry save MODEL --example example.csv",
            path=str(path),
        )
    signature = Signature(inputs=declared)
    probe = probe_batch(signature)
    outputs = infer_outputs(_probe(predictor, probe), predictor.classes, predictor.has_proba)
    manifest = Manifest(
        name=name or _stem(path),
        flavor=flavor.name,
        artifact=str(path),
        signature=Signature(inputs=declared, outputs=outputs),
        created_at=datetime.now(UTC),
        python_version=platform.python_version(),
    )
    return LoadedModel(manifest, predictor, None, probe, None)


def _probe(predictor: Predictor, probe: Batch | None) -> np.ndarray:
    if probe is None:
        return np.empty(0)
    try:
        return predictor.predict(probe)
    except Exception as exc:  # a model that cannot take zeros still serves; we just learn less
        log.info("probe prediction failed: %s", exc)
        return np.empty(0)


def _stem(path: Path) -> str:
    text = str(path)
    if ".py:" in text:
        return text.rsplit(":", 1)[1].lower()
    return path.stem if path.is_file() else path.name


def warn_library_versions(manifest: Manifest) -> None:
    for library, saved in manifest.libraries.items():
        installed = library_version(library)
        if saved and installed and saved != installed:
            warnings.warn(
                f"model {manifest.name!r} was saved with {library} {saved}, "
                f"but {library} {installed} is installed",
                LibraryVersionWarning,
                stacklevel=3,
            )
