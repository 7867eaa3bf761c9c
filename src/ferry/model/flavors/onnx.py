"""ONNX models (``.onnx`` files, ``onnx.ModelProto`` objects), run with onnxruntime on CPU."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferry.errors import FlavorError, MissingDependency, PredictionFailed
from ferry.model.flavors import Flavor, PickleFiles, SavedArtifact, instance_of, library_version
from ferry.model.signature import Batch, ColumnSpec, DType

# onnxruntime element type -> (signature dtype, numpy dtype fed to the session)
_ELEMENT_TYPES: dict[str, tuple[DType, Any]] = {
    "tensor(float)": ("float32", np.float32),
    "tensor(double)": ("float64", np.float64),
    "tensor(float16)": ("float32", np.float16),
    "tensor(int64)": ("int64", np.int64),
    "tensor(int32)": ("int32", np.int32),
    "tensor(int16)": ("int32", np.int16),
    "tensor(int8)": ("int32", np.int8),
    "tensor(uint8)": ("int32", np.uint8),
    "tensor(uint16)": ("int32", np.uint16),
    "tensor(uint32)": ("int64", np.uint32),
    "tensor(uint64)": ("int64", np.uint64),
    "tensor(bool)": ("bool", np.bool_),
    "tensor(string)": ("string", object),
}
# attributes of ai.onnx.ml classifier nodes (ZipMap, LinearClassifier, TreeEnsembleClassifier ...)
_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
_PROBABILITY_NAMES = ("probabilities", "output_probability", "probability")
_INSTALL = "pip install 'ferry-ml[onnx]'"


class OnnxPredictor:
    """One onnxruntime session; inputs fed by name, or stacked into the graph's single input."""

    def __init__(self, session: Any, path: Path, classes: list[Any] | None) -> None:
        self.session = session
        self.path = path
        self._inputs = list(session.get_inputs())
        for spec in self._inputs:
            if spec.type not in _ELEMENT_TYPES:
                raise FlavorError(
                    f"{path.name}: input {spec.name!r} has type {spec.type}; Ferry cannot feed it",
                    path=str(path),
                    input=spec.name,
                )
        outputs = list(session.get_outputs())
        proba = next((o for o in outputs if _is_probability(o)), None) if len(outputs) > 1 else None
        self._proba_output: str | None = None if proba is None else proba.name
        self._label_output: str = next(o.name for o in outputs if o is not proba)
        self._classes = classes if proba is not None else None

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return [
            ColumnSpec(
                name=spec.name, dtype=_ELEMENT_TYPES[spec.type][0], shape=_row_shape(spec.shape)
            )
            for spec in self._inputs
        ]

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    @property
    def has_proba(self) -> bool:
        return self._proba_output is not None

    def predict(self, batch: Batch) -> np.ndarray:
        result = np.asarray(self._run(self._label_output, batch))
        if self._proba_output is None and result.ndim == 2 and result.shape[1] == 1:
            return result.reshape(-1)  # a regressor's [N, 1] answer is one value per row
        return result

    def predict_proba(self, batch: Batch) -> np.ndarray:
        if self._proba_output is None:
            raise FlavorError(f"{self.path.name} has no probabilities output", path=str(self.path))
        result = self._run(self._proba_output, batch)
        if isinstance(result, list):  # ZipMap: one {class: probability} dict per row
            if not result:
                return np.empty((0, len(self._classes or [])))
            if self._classes is None:
                self._classes = list(result[0].keys())
            return np.asarray([[row[c] for c in self._classes] for row in result], dtype=np.float64)
        return np.asarray(result, dtype=np.float64)

    def _run(self, output: str, batch: Batch) -> Any:
        feeds = self._feeds(batch)
        try:
            return self.session.run([output], feeds)[0]
        except _ort_errors() as exc:
            raise PredictionFailed(
                f"onnxruntime failed running {self.path.name}: {exc}", file=self.path.name
            ) from exc

    def _feeds(self, batch: Batch) -> dict[str, np.ndarray]:
        names = [spec.name for spec in self._inputs]
        if set(batch.columns) == set(names):
            return {spec.name: _fit(batch.columns[spec.name], spec) for spec in self._inputs}
        if len(self._inputs) == 1:  # named example columns, stacked back into the one tensor
            return {names[0]: _fit(batch.to_matrix(), self._inputs[0])}
        raise FlavorError(
            f"{self.path.name} takes inputs {names}; got columns {list(batch.columns)}",
            path=str(self.path),
            expected=names,
        )


class OnnxFlavor:
    name = "onnx"

    def pickles(self, artifact: Path, options: Mapping[str, str]) -> PickleFiles:
        return iter(())  # a protobuf graph, never unpickled

    def detect(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".onnx"

    def accepts(self, obj: object) -> bool:
        return instance_of(obj, "onnx", ("ModelProto",))

    def save(self, source: object, model_dir: Path) -> SavedArtifact:
        target = model_dir / "model.onnx"
        if isinstance(source, Path):
            shutil.copyfile(source, target)
        else:
            onnx = _import_onnx()
            onnx.save_model(source, str(target))
        libraries = {
            lib: version for lib in ("onnxruntime", "onnx") if (version := library_version(lib))
        }
        return SavedArtifact(target.name, {}, libraries)

    def load(self, artifact: Path, options: Mapping[str, str]) -> OnnxPredictor:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependency(f"ONNX models need onnxruntime: {_INSTALL}") from exc
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = int(options.get("intra_op_num_threads", "1"))
        session_options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(artifact), session_options, providers=["CPUExecutionProvider"]
            )
        except _ort_errors() as exc:
            raise FlavorError(
                f"cannot load {artifact.name} with onnxruntime: {exc}", path=str(artifact)
            ) from exc
        return OnnxPredictor(session, artifact, _graph_classes(artifact))


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependency(f"saving an ONNX model needs onnx: {_INSTALL}") from exc
    return onnx


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's exception classes (they derive from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
        "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail",
    )  # fmt: skip
    found = tuple(getattr(state, name) for name in names if hasattr(state, name))
    return (*found, RuntimeError, ValueError, OSError)


def _is_probability(output: Any) -> bool:
    return str(output.type).startswith("seq(map(") or output.name.lower() in _PROBABILITY_NAMES


def _row_shape(shape: list[Any]) -> list[int]:
    """The per-row shape of an input: [N] and [N, 1] are scalar columns, [N, k] a vector."""
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in shape[1:]]
    return [] if dims in ([], [1]) else dims


def _fit(array: np.ndarray, spec: Any) -> np.ndarray:
    """Cast to the graph's dtype and reshape [N] <-> [N, 1] to the graph's rank."""
    dtype = _ELEMENT_TYPES[spec.type][1]
    array = np.asarray(array, dtype=dtype)
    rank = len(spec.shape)
    if rank == 2 and array.ndim == 1:
        return array.reshape(-1, 1)
    if rank == 1 and array.ndim == 2 and array.shape[1] == 1:
        return array.reshape(-1)
    return array


def _graph_classes(path: Path) -> list[Any] | None:
    """Class labels from the graph's ZipMap or classifier node; None when onnx is missing."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)  # onnxruntime already parsed it
    nodes = sorted(model.graph.node, key=lambda node: node.op_type != "ZipMap")
    for node in nodes:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


FLAVOR: Flavor = OnnxFlavor()
