"""The size of the array data joblib writes after a ``NumpyArrayWrapper``.

The wrapper's state (shape, dtype, alignment) is rebuilt from the scanned values: only numbers,
strings, tuples, dicts and ``numpy.dtype`` reconstructions made of them are turned back into
real objects; numpy then reports the item size exactly as it will when the file is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.model.scanner.stream import DTYPE, Blob, Global, Made

if TYPE_CHECKING:
    import numpy as np

INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class ArrayLayout:
    nested: bool  # an object array: a nested pickle follows instead of raw data
    aligned: bool  # a padding-length byte (and that many bytes) comes before the data
    nbytes: int


class _Unbuildable(Exception):
    pass


def array_layout(
    state: dict[str, object], cache: dict[int, tuple[object, np.dtype[Any]]] | None = None
) -> ArrayLayout | str:
    """The layout of the data after a wrapper with this ``__dict__``, or why it cannot be
    known (the loader would fail, or the wrapper is not one joblib writes). ``cache`` keeps
    rebuilt dtypes by the identity of their (memoized, so shared) pickled value."""
    for key in ("shape", "dtype"):
        if key not in state:
            return f"the wrapper has no {key!r}"
    try:
        value = state["dtype"]
        hit = None if cache is None else cache.get(id(value))
        if hit is not None and hit[0] is value:
            dtype = hit[1]
        else:
            dtype = _dtype(value)
            if cache is not None:
                cache[id(value)] = (value, dtype)  # the value is kept, so its id stays unique
    except (_Unbuildable, TypeError, ValueError) as exc:
        return f"its dtype cannot be rebuilt ({exc})"
    shape = state["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        return "its shape is not a tuple of integers"
    count = 1
    for dim in shape:
        if dim < 0:
            return "its shape has a negative dimension"
        count *= int(dim)
        if count > INT64_MAX:
            return "its shape overflows"
    if dtype.hasobject:
        return ArrayLayout(nested=True, aligned=False, nbytes=0)
    if dtype.itemsize == 0:
        return "its dtype has no size"
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return ArrayLayout(nested=False, aligned=aligned, nbytes=count * dtype.itemsize)


def _dtype(value: object) -> np.dtype[Any]:
    import numpy as np

    if not isinstance(value, Made) or value.factory.key != DTYPE:
        raise _Unbuildable("not a numpy.dtype")
    value.used = True
    args = tuple(_plain(a) for a in value.args)
    if not args or not isinstance(args[0], str):
        raise _Unbuildable("numpy.dtype without a type string")
    dtype: np.dtype[Any] = np.dtype(*args)  # type: ignore[call-overload]
    if value.dtype_state is not None:
        dtype.__setstate__(_plain(value.dtype_state))  # type: ignore[attr-defined]
    return dtype


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Made):
        return _dtype(value)
    if isinstance(value, Blob | Global):
        raise _Unbuildable(f"a {type(value).__name__.lower()} inside a dtype")
    raise _Unbuildable(f"a {type(value).__name__} inside a dtype")
