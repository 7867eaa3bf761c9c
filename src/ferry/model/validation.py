"""Request data -> validated, typed arrays (a Batch), by a model's signature.

Conversion rules (the same for JSON and CSV, so the same rows give the same arrays):
- ``float32``/``float64``: numbers; a null (JSON ``null``, empty CSV cell) becomes NaN when the
  column is nullable, else it is rejected. Strings and booleans are rejected in JSON; CSV cells
  are parsed. Infinities (``inf``, ``Infinity``, ``1e999``, a 5,000-digit integer, a number
  beyond float32's range in a float32 column, ±inf in a V2 binary tensor) are the caller's
  error, refused naming the column and row: models answer them with an exception (scikit-learn:
  "Input X contains infinity"), which was a 500. ``check_finite`` is that one check, applied to
  every float column whatever protocol it came from.
- ``int32``/``int64``: whole numbers (``3.0`` is accepted, ``3.5`` is not). A nullable integer
  column that receives a null becomes ``float64`` with NaN, as pandas does, so scikit-learn
  imputers see NaN.
- ``bool``: JSON ``true``/``false``; in CSV ``true/false/1/0/yes/no`` (any case). A null in a
  nullable bool column turns the column into ``float64`` (1.0/0.0/NaN), like integers.
- ``string``: any JSON string (numbers are rejected); a null becomes NaN (pandas' missing marker).
- A column with ``required=False`` may be left out of a request entirely; it is then all-missing.

Arrays that already have a dtype (V2 tensors, in-process numpy) are checked by the same rules
in ``arrays.py``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from ferry.errors import EmptyBatch, InvalidShape, InvalidValue, MissingColumn, UnknownColumn
from ferry.model.signature import NUMPY_DTYPES, Batch, ColumnSpec, Signature

_TRUE = frozenset({"true", "1", "yes", "t", "y"})
_FLOAT_MAX = int(np.finfo(np.float64).max)
_INF, _NEGATIVE_INF, _SHORT = math.inf, -math.inf, 32
_FALSE = frozenset({"false", "0", "no", "f", "n"})

Source = Literal["json", "text"]


# --------------------------------------------------------------------------------------------
# validation: three request layouts -> Batch
# --------------------------------------------------------------------------------------------
def batch_from_records(records: object, signature: Signature, *, source: Source = "json") -> Batch:
    """Rows as objects (``[{"a": 1, "b": 2}, ...]``) or as lists in signature order."""
    if not isinstance(records, list):
        raise InvalidShape("expected a list of rows", expected="list", got=type(records).__name__)
    if not records:
        raise EmptyBatch("the request has no rows")
    first = records[0]
    if isinstance(first, dict):
        return _from_objects(records, signature, source)
    if isinstance(first, list | tuple):
        return _from_lists(records, signature, source)
    if len(signature.inputs) == 1 and signature.inputs[0].is_scalar:
        # a single-column model also takes a bare list of values: [1, 2, 3]
        return batch_from_columns({signature.inputs[0].name: records}, signature, source=source)
    raise InvalidShape(
        "each row must be an object of columns or a list of values",
        row=0,
        got=type(first).__name__,
    )


def batch_from_columns(columns: object, signature: Signature, *, source: Source = "json") -> Batch:
    """Columns as lists (``{"a": [1, 2], "b": [3, 4]}``)."""
    if not isinstance(columns, dict):
        raise InvalidShape("expected an object of columns", got=type(columns).__name__)
    check_names(columns.keys(), signature)
    lengths = {name: len(v) for name, v in columns.items() if isinstance(v, list)}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise InvalidShape(
                f"column {name!r} must be a list of values", column=name, got=type(values).__name__
            )
    n_rows = next(iter(lengths.values()), 0)
    if n_rows == 0:
        raise EmptyBatch("the request has no rows")
    if len(set(lengths.values())) > 1:
        raise InvalidShape("columns have different lengths", lengths=lengths)
    arrays = {
        spec.name: convert_column(columns.get(spec.name), spec, n_rows, source)
        for spec in signature.inputs
    }
    return Batch(arrays, n_rows)


def _from_objects(records: list[Any], signature: Signature, source: Source) -> Batch:
    names = signature.names
    known = set(names)
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidShape("every row must be an object", row=row, got=type(record).__name__)
        if record.keys() - known:
            extra = sorted(record.keys() - known)
            raise UnknownColumn(
                f"unknown column {extra[0]!r} in row {row}; expected {names}",
                column=extra[0],
                row=row,
                expected=names,
            )
    arrays: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        values = [record.get(spec.name, _ABSENT) for record in records]
        arrays[spec.name] = convert_column(values, spec, len(records), source)
    return Batch(arrays, len(records))


def _from_lists(rows: list[Any], signature: Signature, source: Source) -> Batch:
    specs = signature.inputs
    if len(specs) == 1 and not specs[0].is_scalar:
        # a single tensor input: each row is that tensor's value
        return Batch({specs[0].name: convert_column(rows, specs[0], len(rows), source)}, len(rows))
    width = len(specs)
    if source == "json" and all(s.is_scalar and s.dtype == "float64" for s in specs):
        fast = _float_matrix(rows, width)
        if fast is not None:
            return Batch.of_matrix(fast, signature.names)
    for row, values in enumerate(rows):
        if not isinstance(values, list | tuple):
            raise InvalidShape("every row must be a list", row=row, got=type(values).__name__)
        if len(values) != width:
            raise InvalidShape(
                f"row {row} has {len(values)} values; the model takes {width}: {signature.names}",
                row=row,
                expected=width,
                got=len(values),
            )
    transposed = list(zip(*rows, strict=True))
    arrays = {
        spec.name: convert_column(list(transposed[i]), spec, len(rows), source)
        for i, spec in enumerate(specs)
    }
    return Batch(arrays, len(rows))


def _float_matrix(rows: list[Any], width: int) -> np.ndarray | None:
    """Rows of plain numbers as one float64 array in a single C pass, else None.

    Anything unusual (strings, nulls, ragged rows, nested lists) returns None, and the
    row-by-row path then converts what it can and names the first bad value.
    """
    try:
        array = np.array(rows)
    except (ValueError, TypeError):
        return None
    if array.ndim != 2 or array.shape[1] != width or array.dtype.kind not in "fiu":
        return None
    matrix = array.astype(np.float64, copy=False)
    # An infinity takes the column-by-column path, which names it. A few rows are looked at
    # in Python (0.2 us for one row; numpy's reduction took 1 us, 25% of this function),
    # more with one reduction (a sum that overflows from finite values near 1e308 just
    # takes the exact path).
    if array.dtype.kind == "f":
        if len(rows) <= _SHORT:
            if any(_INF in row or _NEGATIVE_INF in row for row in rows):
                return None
        elif not math.isfinite(matrix.sum()):
            return None
    return matrix


def check_names(names: Any, signature: Signature) -> None:
    known = set(signature.names)
    for name in names:
        if name not in known:
            raise UnknownColumn(
                f"unknown column {name!r}; expected {signature.names}",
                column=name,
                expected=signature.names,
            )


# --------------------------------------------------------------------------------------------
# one column of values -> one typed numpy array
# --------------------------------------------------------------------------------------------
class _Absent:
    """Marks a column missing from an object row (distinct from an explicit null)."""


_ABSENT: Any = _Absent()


def convert_column(
    values: list[Any] | None, spec: ColumnSpec, n_rows: int, source: Source
) -> np.ndarray:
    """Check and convert one column's values; errors name the column and the first bad row."""
    if values is None or (values and all(v is _ABSENT for v in values)):
        if spec.required:
            raise MissingColumn(
                f"missing required column {spec.name!r}", column=spec.name, expected=spec.dtype
            )
        return all_missing(spec, n_rows)
    if not spec.is_scalar:
        return check_finite(_convert_tensor(values, spec, source), spec)
    if source == "text":
        values = [_parse_text(v, spec, row) for row, v in enumerate(values)]
    return check_finite(_convert_scalars(values, spec), spec, values)


def check_finite(
    array: np.ndarray, spec: ColumnSpec, values: list[Any] | None = None
) -> np.ndarray:
    """``array`` if it holds no infinity, else InvalidValue naming the column and first row.

    NaN is not checked here: it is how a null travels, and whether the column may hold one is
    decided where nulls are converted (``require_nullable``). ``values``, the Python values
    a float64 ``array`` was made of, make the common short column cheap: two ``in`` tests
    take 0.1 us, a numpy reduction 1 us a column (4.5% of a 4-column request's validation
    and prediction, measured as 8.2 -> 14 us of validation alone)."""
    if array.dtype.kind != "f":
        return array
    if values is not None and spec.dtype == "float64" and len(values) <= _SHORT:
        if _INF not in values and _NEGATIVE_INF not in values:
            return array
    elif math.isfinite(array.sum()):
        return array
    infinite = np.isinf(array)
    if not infinite.any():
        return array
    flat = infinite.reshape(len(array), -1).any(axis=1) if array.ndim > 1 else infinite
    row = int(np.argmax(flat))
    within = ""
    if spec.dtype.startswith("float"):
        within = f" (within ±{float(np.finfo(NUMPY_DTYPES[spec.dtype]).max):.4g})"
    raise InvalidValue(
        f"column {spec.name!r} row {row} is infinite or out of range; values must be finite "
        f"{spec.dtype} numbers{within}",
        column=spec.name,
        row=row,
        expected=spec.dtype,
        got="infinity",
    )


def to_float(values: np.ndarray | list[Any], dtype: str) -> np.ndarray:
    """Numbers as a float array of ``dtype``: beyond float32's range they become inf (refused
    by check_finite) without numpy's overflow warning. Only float32 needs the errstate: it
    cost 2-3 us a column on every request."""
    if dtype != "float32":
        return np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float32)


def all_missing(spec: ColumnSpec, n_rows: int) -> np.ndarray:
    if spec.dtype == "string":
        return np.full(n_rows, np.nan, dtype=object)
    return np.full(n_rows, np.nan, dtype=np.float64)


def _convert_scalars(values: list[Any], spec: ColumnSpec) -> np.ndarray:
    dtype = spec.dtype
    if dtype == "string":
        return _convert_strings(values, spec)
    if dtype == "bool":
        return _convert_bools(values, spec)
    # numbers: let numpy do the bulk conversion, then inspect only when it looks wrong
    try:
        array = np.asarray(values) if values else np.empty(0)
    except (ValueError, TypeError):  # nested lists and the like: found and named below
        return _convert_numbers_slowly(values, spec)
    if array.ndim != 1:  # a list where a number belongs
        return _convert_numbers_slowly(values, spec)
    kind = array.dtype.kind
    if dtype.startswith("float") and kind in "fiu":
        return to_float(array, dtype)
    if dtype.startswith("int") and kind in "iu":
        return checked_ints(array, spec)
    return _convert_numbers_slowly(values, spec)


def _convert_numbers_slowly(values: list[Any], spec: ColumnSpec) -> np.ndarray:
    """Row by row: handles nulls, whole floats in int columns, and names the first bad row."""
    is_int = spec.dtype.startswith("int")
    out: list[float | int] = []
    has_missing = False
    for row, value in enumerate(values):
        if value is None or value is _ABSENT or (isinstance(value, float) and math.isnan(value)):
            require_nullable(spec, row)
            has_missing = True
            out.append(math.nan)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(spec, row, value)
        if is_int and isinstance(value, float):
            if not value.is_integer():
                raise InvalidValue(
                    f"column {spec.name!r} row {row}: {value!r} is not a whole number",
                    column=spec.name,
                    row=row,
                    expected=spec.dtype,
                    got=value,
                )
            value = int(value)
        out.append(value)
    if is_int and not has_missing:
        return checked_ints(np.asarray(out), spec)
    target = NUMPY_DTYPES[spec.dtype] if not is_int else np.dtype(np.float64)
    try:
        return to_float(out, target.name)
    except OverflowError:  # an int past float64's range (JSON allows any number of digits)
        row = next(i for i, v in enumerate(out) if isinstance(v, int) and abs(v) > _FLOAT_MAX)
        raise InvalidValue(
            f"column {spec.name!r} row {row}: {_shown(out[row])} is beyond the {spec.dtype} range",
            column=spec.name,
            row=row,
            expected=spec.dtype,
        ) from None


def checked_ints(array: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    target = NUMPY_DTYPES[spec.dtype]
    info = np.iinfo(target)
    if array.size and (array.min() < info.min or array.max() > info.max):
        row = int(np.argmax((array < info.min) | (array > info.max)))
        raise InvalidValue(
            f"column {spec.name!r} row {row}: {_shown(array[row])} is out of range for "
            f"{spec.dtype}",
            column=spec.name,
            row=row,
            expected=spec.dtype,
        )
    return array.astype(target, copy=False)


def _convert_bools(values: list[Any], spec: ColumnSpec) -> np.ndarray:
    has_missing = False
    for row, value in enumerate(values):
        if value is None or value is _ABSENT:
            require_nullable(spec, row)
            has_missing = True
        elif not isinstance(value, bool):
            raise _type_error(spec, row, value)
    if has_missing:
        return np.asarray(
            [math.nan if v is None or v is _ABSENT else float(v) for v in values], dtype=np.float64
        )
    return np.asarray(values, dtype=np.bool_)


def _convert_strings(values: list[Any], spec: ColumnSpec) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        if value is None or value is _ABSENT:
            require_nullable(spec, row)
            out[row] = np.nan
        elif isinstance(value, str):
            out[row] = value
        else:
            raise _type_error(spec, row, value)
    return out


def _convert_tensor(values: list[Any], spec: ColumnSpec, source: Source) -> np.ndarray:
    target = NUMPY_DTYPES[spec.dtype]
    try:
        with np.errstate(over="ignore"):
            array = np.asarray(values, dtype=target if spec.dtype != "string" else None)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidValue(
            f"input {spec.name!r} must hold {spec.dtype} values of shape {spec.shape} per row",
            column=spec.name,
            expected=spec.dtype,
        ) from exc
    expected = tuple(spec.shape)
    got = array.shape[1:]
    if len(got) != len(expected) or any(
        e not in (-1, g) for e, g in zip(expected, got, strict=False)
    ):
        raise InvalidShape(
            f"input {spec.name!r} must have shape {list(expected)} per row, got {list(got)}",
            column=spec.name,
            expected=list(expected),
            got=list(got),
        )
    return array


def _parse_text(value: Any, spec: ColumnSpec, row: int) -> Any:
    """A text cell (CSV, query string) -> the JSON value it stands for."""
    if value is _ABSENT or value is None:
        return value
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "" or (spec.dtype != "string" and text.lower() in ("nan", "null", "na")):
        return None
    if spec.dtype == "string":
        return value
    if spec.dtype == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _type_error(spec, row, value)
    try:
        number = float(text) if spec.dtype.startswith("float") else int(text)
    except ValueError:
        try:
            number = float(text)  # "3.0" in an int column is a whole float: checked later
        except ValueError:
            raise _type_error(spec, row, value) from None
    return number


def require_nullable(spec: ColumnSpec, row: int) -> None:
    if not (spec.nullable or not spec.required):
        raise InvalidValue(
            f"column {spec.name!r} row {row} is null, but the column does not allow missing values",
            column=spec.name,
            row=row,
            expected=spec.dtype,
            got=None,
        )


def _type_error(spec: ColumnSpec, row: int, value: Any) -> InvalidValue:
    shown = _shown(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    return InvalidValue(
        f"column {spec.name!r} row {row}: expected {spec.dtype}, got {shown!r}",
        column=spec.name,
        row=row,
        expected=spec.dtype,
        got=shown,
    )


def _shown(value: Any) -> Any:
    """A caller's value as an error message and its details show it: the value itself, or its
    first 40 characters (a 131,072-character CSV cell or a 5,000-digit integer was echoed
    whole, in the message and again in the details)."""
    if isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 1 << 63):
        return value
    try:
        text = str(value)
    except ValueError:  # an int past Python's 4,300-digit str() limit
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"
