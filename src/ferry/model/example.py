"""Input example and expected output: stored with a bundle, replayed to check a deployment."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson

from ferry.errors import BundleError
from ferry.model.signature import Batch, Signature
from ferry.model.validation import batch_from_records

if TYPE_CHECKING:
    from ferry.model.loaded import LoadedModel

EXAMPLE_FILE = "example.json"
EXPECTED_FILE = "expected.json"
FLOAT_TOLERANCE = 1e-6


def frame_to_split(frame: Any) -> dict[str, Any]:
    """A DataFrame as pandas 'split' JSON (columns + rows), missing values as null."""
    rows = [[_json_value(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in frame.columns], "data": rows}


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def write_json(path: Path, data: object) -> None:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2))


def read_split(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BundleError(f"cannot read the input example {path}: {exc}") from exc
    if not isinstance(data, dict) or "columns" not in data or "data" not in data:
        raise BundleError(f"{path} must hold {{'columns': [...], 'data': [[...]]}}")
    return data


def example_batch(split: dict[str, Any], signature: Signature) -> Batch:
    """The stored example as a validated batch (column order from the file)."""
    records = [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
    return batch_from_records(records, signature)


def outputs_to_json(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    return {name: array.tolist() for name, array in outputs.items()}


@dataclass(frozen=True, slots=True)
class Mismatch:
    output: str
    row: int
    expected: Any
    got: Any


def compare_outputs(
    expected: dict[str, Any], actual: dict[str, Any], tolerance: float = FLOAT_TOLERANCE
) -> list[Mismatch]:
    """Row-by-row differences: exact for labels and integers, relative tolerance for floats."""
    mismatches: list[Mismatch] = []
    for name, want in expected.items():
        got = actual.get(name)
        if not isinstance(got, list) or not isinstance(want, list) or len(got) != len(want):
            mismatches.append(Mismatch(name, -1, _size(want), _size(got)))
            continue
        for row, (w, g) in enumerate(zip(want, got, strict=True)):
            if not values_match(w, g, tolerance):
                mismatches.append(Mismatch(name, row, w, g))
    return mismatches


def values_match(want: Any, got: Any, tolerance: float = FLOAT_TOLERANCE) -> bool:
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(
            values_match(w, g, tolerance) for w, g in zip(want, got, strict=True)
        )
    if isinstance(want, float) or isinstance(got, float):
        if want is None or got is None:
            return want is got
        if isinstance(want, bool) or isinstance(got, bool):
            return bool(want == got)
        if not isinstance(want, int | float) or not isinstance(got, int | float):
            return False
        return math.isclose(want, got, rel_tol=tolerance, abs_tol=tolerance)
    return bool(want == got)


def _size(value: object) -> str:
    return f"{len(value)} rows" if isinstance(value, list) else type(value).__name__


@dataclass(frozen=True, slots=True)
class Replay:
    """What a model answered to its stored input example, against its expected output."""

    status: Literal["passed", "mismatch", "no_expected_output", "no_example"]
    mismatches: tuple[Mismatch, ...] = ()

    def summary(self) -> str:
        """``3 mismatches; first: predictions row 2: expected 1, got 0`` (empty when none)."""
        if not self.mismatches:
            return ""
        first = self.mismatches[0]
        return (
            f"{len(self.mismatches)} mismatches; first: {first.output} row {first.row}: "
            f"expected {first.expected!r}, got {first.got!r}"
        )


def replay_example(model: LoadedModel) -> Replay:
    """Predict the bundle's stored example and compare with its stored expected output: the
    one replay the upload inspector, the server's start-up check and an image's smoke test
    share. Whatever the model raises on its own example propagates (each caller decides)."""
    if model.example is None:
        return Replay("no_example")
    wanted = [n for n in (model.expected or {"predictions": None}) if n in model.output_names]
    actual = outputs_to_json(model.predict_outputs(model.example, wanted or ["predictions"]))
    if model.expected is None:
        return Replay("no_expected_output")
    mismatches = tuple(compare_outputs(model.expected, actual))
    return Replay("mismatch", mismatches) if mismatches else Replay("passed")
