"""Input/output schema of a model, inferred from an example and the model itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import InvalidShape, MissingColumn, UnknownColumn

DType = Literal["bool", "int32", "int64", "float32", "float64", "string"]
OutputKind = Literal["label", "value", "probabilities"]

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "bool": np.dtype(np.bool_),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "string": np.dtype(object),
}
JSON_TYPES: dict[str, str] = {
    "bool": "boolean",
    "int32": "integer",
    "int64": "integer",
    "float32": "number",
    "float64": "number",
    "string": "string",
}


class ColumnSpec(BaseModel):
    """One named input; ``shape`` is per row: ``[]`` for a scalar column, ``[4]`` for a vector."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: DType
    shape: list[int] = Field(default_factory=list)
    required: bool = True
    nullable: bool = False
    categories: list[str] | None = None

    @property
    def is_scalar(self) -> bool:
        return not self.shape


class OutputSpec(BaseModel):
    """One output; ``shape`` is per row: ``[]`` for one value, ``[k]`` for a vector per row."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: DType
    shape: list[int] = Field(default_factory=list)
    kind: OutputKind = "value"
    labels: list[str | int | float | bool] | None = None


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: list[ColumnSpec]
    outputs: list[OutputSpec] = Field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.inputs]

    @property
    def is_tabular(self) -> bool:
        return all(column.is_scalar for column in self.inputs)

    def column(self, name: str) -> ColumnSpec:
        for column in self.inputs:
            if column.name == name:
                return column
        raise UnknownColumn(
            f"unknown column {name!r}; expected one of {self.names}",
            column=name,
            expected=self.names,
        )

    def output(self, name: str) -> OutputSpec | None:
        return next((output for output in self.outputs if output.name == name), None)


@dataclass(frozen=True, slots=True)
class Batch:
    """Validated input rows: one numpy array per signature column, each with ``n_rows`` rows."""

    columns: dict[str, np.ndarray]
    n_rows: int
    # the same rows as one float64 array in signature column order, when they arrived that way
    # (rows of numbers): the columns are views into it and to_matrix() costs nothing
    matrix: np.ndarray | None = None

    def to_frame(self) -> Any:
        """A pandas DataFrame of the scalar columns, in signature order."""
        import pandas as pd

        return pd.DataFrame(self.columns, copy=False)

    def to_matrix(self) -> np.ndarray:
        """A 2-D array (rows x features): scalar columns stacked, vector columns flattened."""
        if self.matrix is not None:
            return self.matrix
        arrays = [a.reshape(self.n_rows, -1) for a in self.columns.values()]
        if len(arrays) == 1:
            return arrays[0]
        return np.hstack(arrays)

    def take(self, start: int, stop: int) -> Batch:
        matrix = None if self.matrix is None else self.matrix[start:stop]
        return Batch({k: v[start:stop] for k, v in self.columns.items()}, stop - start, matrix)

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        """Rows of several batches of the same signature, in order (dtypes upcast as numpy does)."""
        if len(batches) == 1:
            return batches[0]
        n_rows = sum(b.n_rows for b in batches)
        if all(b.matrix is not None for b in batches):
            return cls.of_matrix(
                np.vstack([b.matrix for b in batches if b.matrix is not None]),
                list(batches[0].columns),
            )
        names = batches[0].columns.keys()
        columns = {name: np.concatenate([b.columns[name] for b in batches]) for name in names}
        return cls(columns, n_rows)

    @classmethod
    def of_matrix(cls, matrix: np.ndarray, names: Sequence[str]) -> Batch:
        """A batch over a 2-D float64 array whose columns are ``names``, in order."""
        columns = {name: matrix[:, i] for i, name in enumerate(names)}
        return cls(columns, matrix.shape[0], matrix)


# --------------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------------
def dtype_of(array: np.ndarray | Sequence[Any]) -> DType:
    """The signature dtype that describes a numpy/pandas column."""
    kind = np.asarray(array).dtype
    if kind.kind == "b":
        return "bool"
    if kind.kind in "iu":
        return "int32" if kind.itemsize <= 4 and kind.kind == "i" else "int64"
    if kind.kind == "f":
        return "float32" if kind.itemsize <= 4 else "float64"
    return "string"


def columns_from_example(example: Any) -> list[ColumnSpec]:
    """Column specs from an example: a DataFrame, a dict of lists, records, or a 2-D array."""
    import pandas as pd

    frame = example if isinstance(example, pd.DataFrame) else to_frame(example)
    specs: list[ColumnSpec] = []
    for name in frame.columns:
        series = frame[name]
        has_missing = bool(series.isna().any())
        dtype_name = str(series.dtype)
        categories: list[str] | None = None
        if dtype_name in ("Int64", "Int32", "Int16", "Int8"):
            dtype: DType = "int64" if dtype_name != "Int32" else "int32"
        elif dtype_name == "boolean":
            dtype = "bool"
        elif dtype_name == "category":
            dtype = "string"
            categories = [str(c) for c in series.cat.categories]
        elif series.dtype.kind in "biuf":
            dtype = dtype_of(series.to_numpy())
        else:
            non_null = series.dropna()
            if len(non_null) and all(isinstance(v, bool) for v in non_null):
                dtype = "bool"
            else:
                dtype = "string"
        specs.append(
            ColumnSpec(name=str(name), dtype=dtype, nullable=has_missing, categories=categories)
        )
    return specs


def to_frame(data: Any, columns: Sequence[str] | None = None) -> Any:
    """Any tabular example (DataFrame, dict of lists, records, 2-D array) -> a DataFrame."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, Mapping):
        return pd.DataFrame({str(k): list(v) for k, v in data.items()})
    array = np.asarray(data)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise InvalidShape("a tabular example must be 2-D", got=list(array.shape))
    names = list(columns) if columns is not None else [f"f{i}" for i in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise InvalidShape(
            f"the example has {array.shape[1]} columns but the model names {len(names)}",
            expected=names,
        )
    return pd.DataFrame(array, columns=names)


def merge_columns(
    declared: list[ColumnSpec] | None, example: list[ColumnSpec] | None
) -> list[ColumnSpec]:
    """Combine what the model declares (names) with what the example shows (dtypes, nulls)."""
    if example is None:
        if declared is None:
            raise MissingColumn("no input example and the model does not declare its inputs")
        return declared
    if declared is None:
        return example
    if len(declared) == 1 and not declared[0].is_scalar and declared[0].shape == [len(example)]:
        # one tensor input (ONNX float_input [-1, k]) and k named example columns: keep the names,
        # the flavor stacks the columns back into the tensor
        return example
    by_name = {spec.name: spec for spec in example}
    declared_names = [spec.name for spec in declared]
    if set(by_name) != set(declared_names):
        missing = sorted(set(declared_names) - set(by_name))
        extra = sorted(set(by_name) - set(declared_names))
        raise MissingColumn(
            f"the example's columns do not match the model's: missing {missing}, extra {extra}",
            expected=declared_names,
            missing=missing,
            extra=extra,
        )
    return [by_name[name] for name in declared_names]


def infer_outputs(
    predictions: np.ndarray, classes: list[Any] | None, has_proba: bool
) -> list[OutputSpec]:
    """Output specs from the model's answer on an example (or a probe row)."""
    kind: OutputKind = "label" if classes is not None else "value"
    outputs = [
        OutputSpec(
            name="predictions",
            dtype=dtype_of(predictions),
            shape=list(predictions.shape[1:]),
            kind=kind,
        )
    ]
    if has_proba and classes is not None:
        outputs.append(
            OutputSpec(
                name="probabilities",
                dtype="float64",
                shape=[len(classes)],
                kind="probabilities",
                labels=list(classes),
            )
        )
    return outputs


def probe_batch(signature: Signature) -> Batch | None:
    """One synthetic all-zero row, when every input is numeric or bool (no example needed)."""
    arrays: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if spec.dtype == "string":
            return None
        shape = [1, *[max(d, 1) for d in spec.shape]]
        arrays[spec.name] = np.zeros(shape, dtype=NUMPY_DTYPES[spec.dtype])
    return Batch(arrays, 1)
