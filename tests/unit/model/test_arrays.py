"""Typed arrays -> a Batch: checked by the signature, converted only where the dtype differs,
and one [rows, columns] tensor kept as the batch's matrix."""

from __future__ import annotations

import numpy as np
import pytest

from ferry.errors import EmptyBatch, InvalidShape, InvalidValue, UnknownColumn
from ferry.model.arrays import batch_from_arrays, batch_from_matrix
from ferry.model.signature import ColumnSpec, Signature

FLOATS = Signature(
    inputs=[
        ColumnSpec(name="a", dtype="float64"),
        ColumnSpec(name="b", dtype="float64"),
        ColumnSpec(name="n", dtype="float64", nullable=True),
    ]
)
MIXED = Signature(
    inputs=[
        ColumnSpec(name="x", dtype="float64"),
        ColumnSpec(name="k", dtype="int32"),
        ColumnSpec(name="f", dtype="float32"),
    ]
)


def test_a_matrix_of_float64_columns_stays_one_array() -> None:
    matrix = np.array([[1.0, 2.0, np.nan], [4.0, 5.0, 6.0]])
    batch = batch_from_matrix(matrix, FLOATS)
    assert batch.n_rows == 2
    assert batch.matrix is not None
    assert batch.to_matrix() is batch.matrix
    np.testing.assert_array_equal(batch.to_matrix(), matrix)
    assert batch.columns["b"].tolist() == [2.0, 5.0]
    assert np.isnan(batch.columns["n"][0])


def test_a_matrix_of_integers_becomes_float64() -> None:
    batch = batch_from_matrix(np.array([[1, 2, 3]], dtype=np.int64), FLOATS)
    assert batch.to_matrix().dtype == np.float64
    assert batch.to_matrix().tolist() == [[1.0, 2.0, 3.0]]


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (1, "b", np.nan, "row 1 is null"),
        (0, "a", np.inf, "row 0 is infinite"),
        (1, "n", -np.inf, "row 1 is infinite"),
    ],
)
def test_a_matrix_names_the_bad_column_and_row(
    row: int, column: str, value: float, message: str
) -> None:
    matrix = np.ones((2, 3))
    matrix[row, FLOATS.names.index(column)] = value
    with pytest.raises(InvalidValue) as caught:
        batch_from_matrix(matrix, FLOATS)
    assert caught.value.details["column"] == column
    assert caught.value.details["row"] == row
    assert message in caught.value.message


def test_a_matrix_of_the_wrong_width_or_no_rows_is_refused() -> None:
    with pytest.raises(InvalidShape):
        batch_from_matrix(np.ones((2, 2)), FLOATS)
    with pytest.raises(EmptyBatch):
        batch_from_matrix(np.ones((0, 3)), FLOATS)


def test_a_matrix_for_mixed_columns_is_split_and_converted_per_column() -> None:
    batch = batch_from_matrix(np.array([[1.5, 2.0, 3.25], [0.0, -7.0, 1.0]]), MIXED)
    assert batch.matrix is None
    assert batch.columns["k"].dtype == np.int32
    assert batch.columns["k"].tolist() == [2, -7]
    assert batch.columns["f"].dtype == np.float32
    with pytest.raises(InvalidValue, match="whole numbers"):
        batch_from_matrix(np.array([[1.5, 2.5, 3.0]]), MIXED)


def test_arrays_of_the_column_dtype_are_kept_and_others_converted() -> None:
    x = np.array([1.0, 2.0])
    batch = batch_from_arrays(
        {"x": x, "k": np.array([1, 2], dtype=np.int8), "f": np.array([1.0, 2.0])}, MIXED
    )
    assert batch.columns["x"] is x
    assert batch.columns["k"].dtype == np.int32
    assert batch.columns["f"].dtype == np.float32


def test_integers_are_range_checked_only_when_the_dtype_does_not_fit() -> None:
    wide = {"x": np.array([1.0]), "k": np.array([2**40], dtype=np.int64), "f": np.array([1.0])}
    with pytest.raises(InvalidValue, match="out of range for int32"):
        batch_from_arrays(wide, MIXED)
    fits = {**wide, "k": np.array([2**31 - 1], dtype=np.int64)}
    assert batch_from_arrays(fits, MIXED).columns["k"].tolist() == [2**31 - 1]


def test_nan_and_infinity_in_arrays_name_the_column_and_row() -> None:
    arrays = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, np.nan]), "n": np.array([1.0, 1.0])}
    with pytest.raises(InvalidValue, match="row 1 is null") as caught:
        batch_from_arrays(arrays, FLOATS)
    assert caught.value.details["column"] == "b"
    infinite = {**arrays, "b": np.array([np.inf, 1.0], dtype=np.float32)}
    with pytest.raises(InvalidValue, match="row 0 is infinite"):
        batch_from_arrays(infinite, FLOATS)
    nullable = {**arrays, "b": np.array([3.0, 4.0]), "n": np.array([np.nan, 1.0])}
    assert np.isnan(batch_from_arrays(nullable, FLOATS).columns["n"][0])


def test_unknown_names_are_refused() -> None:
    with pytest.raises(UnknownColumn):
        batch_from_arrays({"zzz": np.array([1.0])}, FLOATS)
