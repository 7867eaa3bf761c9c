"""Convert a scikit-learn bundle to ONNX and prove the copy answers like the original.

onnxruntime calls a small model in a few microseconds where scikit-learn spends ~100 µs on
input checks, so serving the ONNX copy of a linear model or a forest is several times faster.
The copy computes in float32: it is accepted only when, on the bundle's own example and on
generated rows spanning the example's range, every label matches (except rows whose two top
class probabilities are within ``tie_margin``, where float32 may pick the other class) and
every probability or value matches within ``tolerance``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferry.errors import FlavorError, MissingDependency
from ferry.model.bundle import save
from ferry.model.loaded import LoadedModel, load_bundle
from ferry.model.manifest import Manifest
from ferry.model.signature import Batch

GENERATED_ROWS = 500
DEFAULT_TOLERANCE = 1e-4
TIE_MARGIN = 1e-4


@dataclass(frozen=True, slots=True)
class Comparison:
    rows: int
    label_mismatches: int
    max_abs_difference: float


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    manifest: Manifest
    comparison: Comparison


def optimize_to_onnx(
    source: Path, dest: Path, *, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0
) -> OptimizeResult:
    """Write an ONNX bundle at ``dest`` answering like the scikit-learn bundle at ``source``."""
    original = load_bundle(source)
    if original.manifest.flavor != "sklearn":
        raise FlavorError(
            f"only scikit-learn bundles convert to ONNX; {source} is {original.manifest.flavor}",
            flavor=original.manifest.flavor,
        )
    if original.example is None:
        raise FlavorError(f"{source} has no input example to check the conversion against")
    signature = original.signature
    if not signature.is_tabular or any(c.dtype == "string" for c in signature.inputs):
        raise FlavorError("ONNX conversion supports numeric tabular inputs only")
    estimator = getattr(original.predictor, "estimator", None)
    proto = _convert(estimator, len(signature.inputs))
    example_frame = original.example.to_frame()
    with tempfile.TemporaryDirectory() as scratch:
        onnx_file = Path(scratch) / "model.onnx"
        onnx_file.write_bytes(proto.SerializeToString())
        manifest = save(
            onnx_file,
            dest,
            example=example_frame,
            name=original.name,
            flavor="onnx",
            description=f"ONNX conversion of {original.name} version {original.version}",
        )
    converted = load_bundle(dest)
    checks = [original.example, generated_rows(original.example, GENERATED_ROWS, seed)]
    comparison = _merge([compare_models(original, converted, batch, tolerance) for batch in checks])
    if comparison.label_mismatches or comparison.max_abs_difference > tolerance:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        raise FlavorError(
            f"the ONNX copy of {original.name} does not answer like the original: "
            f"{comparison.label_mismatches} labels differ, largest difference "
            f"{comparison.max_abs_difference:.3g} (tolerance {tolerance})",
            label_mismatches=comparison.label_mismatches,
            max_abs_difference=comparison.max_abs_difference,
        )
    return OptimizeResult(manifest, comparison)


def _convert(estimator: Any, n_features: int) -> Any:
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise MissingDependency("ONNX conversion needs skl2onnx: pip install skl2onnx") from exc
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    try:
        return to_onnx(
            estimator,
            initial_types=[("float_input", FloatTensorType([None, n_features]))],
            options=options,
            target_opset=17,
        )
    except Exception as exc:  # skl2onnx raises many kinds for unsupported estimators
        raise FlavorError(
            f"skl2onnx cannot convert {type(estimator).__name__}: {exc}",
            estimator=type(estimator).__name__,
        ) from exc


def generated_rows(example: Batch, n_rows: int, seed: int) -> Batch:
    """Rows drawn uniformly within each column's range in the example (ints stay whole)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for name, values in example.columns.items():
        finite = values[np.isfinite(values.astype(np.float64))]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        drawn = rng.uniform(low, high, n_rows)
        if values.dtype.kind in "iu":
            drawn = np.rint(drawn)
        columns[name] = drawn.astype(values.dtype if values.dtype.kind != "b" else np.float64)
    return Batch(columns, n_rows)


def compare_models(
    original: LoadedModel, converted: LoadedModel, batch: Batch, tolerance: float
) -> Comparison:
    outputs = [name for name in original.output_names if name in converted.output_names]
    want = original.predict_outputs(batch, outputs)
    got = converted.predict_outputs(batch, outputs)
    mismatches = 0
    difference = 0.0
    if "probabilities" in want:
        p_want, p_got = want["probabilities"], got["probabilities"]
        difference = float(np.max(np.abs(p_want - p_got)))
        top2 = np.sort(p_want, axis=1)[:, -2:]
        decided = (top2[:, 1] - top2[:, 0]) > TIE_MARGIN
        differ = np.asarray(want["predictions"]) != np.asarray(got["predictions"])
        mismatches = int(np.sum(differ & decided))
    elif original.signature.outputs[0].kind == "label":
        mismatches = int(np.sum(np.asarray(want["predictions"]) != np.asarray(got["predictions"])))
    else:
        values_want = np.asarray(want["predictions"], dtype=np.float64)
        values_got = np.asarray(got["predictions"], dtype=np.float64).reshape(values_want.shape)
        scale = np.maximum(1.0, np.abs(values_want))
        difference = float(np.max(np.abs(values_want - values_got) / scale))
    return Comparison(batch.n_rows, mismatches, difference)


def _merge(comparisons: list[Comparison]) -> Comparison:
    return Comparison(
        sum(c.rows for c in comparisons),
        sum(c.label_mismatches for c in comparisons),
        max(c.max_abs_difference for c in comparisons),
    )
