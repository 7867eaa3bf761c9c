"""Request data -> typed arrays: the same rules for JSON, CSV text and tensors."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import pytest

from ferry.errors import (
    EmptyBatch,
    FerryError,
    InvalidShape,
    InvalidValue,
    MissingColumn,
    UnknownColumn,
)
from ferry.model.arrays import batch_from_arrays
from ferry.model.signature import ColumnSpec, Signature
from ferry.model.validation import (
    batch_from_columns,
    batch_from_records,
)

SIGNATURE = Signature(
    inputs=[
        ColumnSpec(name="age", dtype="int64", nullable=True),
        ColumnSpec(name="count", dtype="int64"),
        ColumnSpec(name="income", dtype="float64", nullable=True),
        ColumnSpec(name="member", dtype="bool"),
        ColumnSpec(name="city", dtype="string"),
        ColumnSpec(name="referrer", dtype="string", required=False, nullable=True),
    ]
)
ROWS: list[dict[str, Any]] = [
    {"age": 31, "count": 2, "income": 1000.5, "member": True, "city": "paris", "referrer": "ad"},
    {"age": None, "count": 0, "income": None, "member": False, "city": "lyon", "referrer": None},
    {"age": 45, "count": 7, "income": 20.0, "member": True, "city": "nice"},
]


def as_csv(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The rows as a CSV round trip gives them: text cells, empty for missing."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) + ["referrer"], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v)
                for k, v in row.items()
            }
        )
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def assert_same_batches(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        for a, b in zip(left[name].tolist(), right[name].tolist(), strict=True):
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), name


def test_json_and_csv_convert_the_same() -> None:
    from_json = batch_from_records(ROWS, SIGNATURE)
    from_csv = batch_from_records(as_csv(ROWS), SIGNATURE, source="text")
    assert_same_batches(from_json.columns, from_csv.columns)


def test_records_lists_and_columns_convert_the_same() -> None:
    full = [{**row, "referrer": row.get("referrer")} for row in ROWS]
    by_records = batch_from_records(full, SIGNATURE)
    by_lists = batch_from_records([list(row.values()) for row in full], SIGNATURE)
    by_columns = batch_from_columns({k: [r[k] for r in full] for k in full[0]}, SIGNATURE)
    assert_same_batches(by_records.columns, by_lists.columns)
    assert_same_batches(by_records.columns, by_columns.columns)


def test_integer_column_with_missing_values_becomes_float_nan() -> None:
    batch = batch_from_records(ROWS, SIGNATURE)
    assert batch.columns["age"].dtype == np.float64
    assert math.isnan(batch.columns["age"][1])
    assert batch.columns["age"][0] == 31
    without_gaps = batch_from_records([ROWS[0], ROWS[2]], SIGNATURE)
    assert without_gaps.columns["age"].dtype == np.int64
    assert batch.columns["count"].dtype == np.int64


def test_whole_floats_are_integers_but_fractions_are_not() -> None:
    batch = batch_from_records([{**ROWS[0], "count": 3.0}], SIGNATURE)
    assert batch.columns["count"].tolist() == [3]
    with pytest.raises(InvalidValue, match="whole number"):
        batch_from_records([{**ROWS[0], "count": 3.5}], SIGNATURE)


def test_optional_column_may_be_left_out() -> None:
    batch = batch_from_records([{k: v for k, v in ROWS[0].items() if k != "referrer"}], SIGNATURE)
    assert batch.columns["referrer"].dtype == object
    assert math.isnan(batch.columns["referrer"][0])


@pytest.mark.parametrize("text", ["true", "True", "1", "yes", "TRUE"])
def test_csv_booleans(text: str) -> None:
    row = {**as_csv(ROWS)[0], "member": text}
    assert batch_from_records([row], SIGNATURE, source="text").columns["member"].tolist() == [True]


@pytest.mark.parametrize(
    ("change", "error", "column"),
    [
        ({"count": None}, InvalidValue, "count"),
        ({"count": "3"}, InvalidValue, "count"),
        ({"income": "high"}, InvalidValue, "income"),
        ({"member": 1}, InvalidValue, "member"),
        ({"member": "yes"}, InvalidValue, "member"),
        ({"city": 75}, InvalidValue, "city"),
        ({"city": None}, InvalidValue, "city"),
        ({"count": 2**70}, InvalidValue, "count"),
        ({"colour": "red"}, UnknownColumn, "colour"),
    ],
)
def test_bad_values_name_the_column(
    change: dict[str, Any], error: type[FerryError], column: str
) -> None:
    rows = [ROWS[0], {**ROWS[0], **change}]
    with pytest.raises(error) as info:
        batch_from_records(rows, SIGNATURE)
    assert info.value.details["column"] == column
    if error is InvalidValue:
        assert info.value.details["row"] == 1


def test_missing_required_column() -> None:
    with pytest.raises(MissingColumn) as info:
        batch_from_records([{k: v for k, v in ROWS[0].items() if k != "city"}], SIGNATURE)
    assert info.value.details["column"] == "city"


def test_shapes() -> None:
    with pytest.raises(EmptyBatch):
        batch_from_records([], SIGNATURE)
    with pytest.raises(InvalidShape):
        batch_from_records([[1, 2]], SIGNATURE)
    with pytest.raises(InvalidShape):
        batch_from_columns({"age": [1, 2], "count": [1]}, SIGNATURE)


def test_tensors_follow_the_same_rules() -> None:
    numeric = Signature(
        inputs=[ColumnSpec(name="x", dtype="float64"), ColumnSpec(name="n", dtype="int64")]
    )
    batch = batch_from_arrays({"x": np.array([1.0, 2.0]), "n": np.array([[3.0], [4.0]])}, numeric)
    assert batch.columns["n"].dtype == np.int64
    assert batch.columns["n"].tolist() == [3, 4]
    with pytest.raises(InvalidValue, match="whole numbers"):
        batch_from_arrays({"x": np.array([1.0]), "n": np.array([3.5])}, numeric)
    with pytest.raises(InvalidValue, match="missing values"):
        batch_from_arrays({"x": np.array([np.nan]), "n": np.array([3])}, numeric)
    with pytest.raises(InvalidValue):
        batch_from_arrays({"x": np.array(["a"], dtype=object), "n": np.array([3])}, numeric)


def test_vector_input_per_row() -> None:
    tensor = Signature(inputs=[ColumnSpec(name="pixels", dtype="float32", shape=[3])])
    batch = batch_from_records([[0.1, 0.2, 0.3], [1, 2, 3]], tensor)
    assert batch.columns["pixels"].shape == (2, 3)
    assert batch.columns["pixels"].dtype == np.float32
    with pytest.raises(InvalidShape):
        batch_from_records([[0.1, 0.2]], tensor)


FLOATS = Signature(inputs=[ColumnSpec(name=n, dtype="float64") for n in ("a", "b", "c")])


def test_rows_of_numbers_take_the_matrix_path() -> None:
    batch = batch_from_records([[1, 2.5, 3], [4, 5, 6.5]], FLOATS)
    assert batch.matrix is not None
    assert batch.to_matrix().tolist() == [[1.0, 2.5, 3.0], [4.0, 5.0, 6.5]]
    assert batch.columns["b"].tolist() == [2.5, 5.0]


@pytest.mark.parametrize(
    ("rows", "error", "column"),
    [
        ([[1, 2, 3], [4, "5", 6]], InvalidValue, "b"),
        ([[1, 2, 3], [4, None, 6]], InvalidValue, "b"),
        ([[1, 2, 3], [4, 5]], InvalidShape, None),
        ([[1, 2, 3], [4, [5], 6]], InvalidValue, "b"),
    ],
)
def test_unusual_rows_fall_back_and_name_the_problem(
    rows: list[Any], error: type[FerryError], column: str | None
) -> None:
    with pytest.raises(error) as info:
        batch_from_records(rows, FLOATS)
    if column is not None:
        assert info.value.details["column"] == column
        assert info.value.details["row"] == 1


# --- infinities and out-of-range numbers: the caller's error, named, in every layout ---------
FINITE = Signature(
    inputs=[
        ColumnSpec(name="a", dtype="float64"),
        ColumnSpec(name="b", dtype="float32"),
        ColumnSpec(name="n", dtype="float64", nullable=True),
    ]
)
HUGE = "9" * 5000  # beyond float64 as text, and beyond Python's 4,300-digit int() limit


def assert_infinite(call: Any, column: str, row: int) -> None:
    with pytest.raises(InvalidValue) as caught:
        call()
    assert caught.value.details["column"] == column
    assert caught.value.details["row"] == row
    assert f"column {column!r} row {row}" in caught.value.message
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("text", ["inf", "-inf", "Infinity", "-Infinity", "1e999", HUGE])
def test_text_infinities_are_refused_naming_column_and_row(text: str) -> None:
    good = {"a": "1", "b": "2", "n": ""}
    rows = [good, {**good, "a": text}]
    assert_infinite(lambda: batch_from_records(rows, FINITE, source="text"), "a", 1)
    columns = {"a": ["1", "2"], "b": ["2", text], "n": ["", ""]}
    assert_infinite(lambda: batch_from_columns(columns, FINITE, source="text"), "b", 1)


def test_json_infinities_are_refused_on_the_fast_and_the_slow_path() -> None:
    inf = math.inf
    assert_infinite(lambda: batch_from_records([[1.0, 2.0, 3.0], [1.0, inf, 3.0]], FINITE), "b", 1)
    assert_infinite(lambda: batch_from_records([{"a": -inf, "b": 1, "n": None}], FINITE), "a", 0)
    assert_infinite(lambda: batch_from_columns({"a": [1], "b": [1], "n": [inf]}, FINITE), "n", 0)


def test_numbers_beyond_float32_or_float64_are_refused() -> None:
    assert_infinite(lambda: batch_from_records([[1.0, 1e300, 0.0]], FINITE), "b", 0)
    huge_int = 10**400  # JSON has no limit on digits; Python parses it exactly
    assert_infinite(lambda: batch_from_records([[huge_int, 1.0, 0.0]], FINITE), "a", 0)


def test_binary_tensor_infinities_are_refused() -> None:
    arrays = {
        "a": np.array([1.0, 2.0]),
        "b": np.array([1.0, -np.inf], dtype=np.float32),
        "n": np.array([np.nan, 1.0]),
    }
    assert_infinite(lambda: batch_from_arrays(arrays, FINITE), "b", 1)


def test_nan_stays_allowed_where_nullable_and_finite_values_pass() -> None:
    batch = batch_from_records([[1.5, 3.4e38, None], [-1e308, -3.4e38, 2.0]], FINITE)
    assert batch.columns["a"].tolist() == [1.5, -1e308]
    assert np.isnan(batch.columns["n"][0])
    arrays = {"a": np.array([1.0]), "b": np.array([1.0]), "n": np.array([np.nan])}
    assert np.isnan(batch_from_arrays(arrays, FINITE).columns["n"][0])
    with pytest.raises(InvalidValue, match="row 0 is null"):
        batch_from_arrays({**arrays, "a": np.array([np.nan])}, FINITE)


@pytest.mark.parametrize("text", ["inf", "1e999", HUGE, "1" * 4000])
def test_integer_columns_refuse_infinities_and_huge_numbers(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        batch_from_records([{**as_csv(ROWS)[0], "count": text}], SIGNATURE, source="text")
    assert caught.value.details["column"] == "count"
    assert len(caught.value.message) < 200  # the value is shown cut, not whole


def test_a_long_bad_cell_is_shown_cut() -> None:
    with pytest.raises(InvalidValue) as caught:
        batch_from_records([{"a": "x" * 200_000, "b": "1", "n": ""}], FINITE, source="text")
    assert len(caught.value.message) < 200
    assert "200000 characters" in str(caught.value.details["got"])
