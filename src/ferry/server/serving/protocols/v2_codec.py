"""Open Inference Protocol V2 REST bodies: parse infer requests, encode infer responses.

A pure codec: bytes in, dataclasses and numpy arrays out (and back), no HTTP framework and no
I/O. It speaks Triton's binary tensor data extension as well as plain JSON: a request whose
``Inference-Header-Content-Length`` is N carries its JSON in the first N bytes and the raw
tensors (little-endian, row-major; a ``BYTES`` element is a 4-byte little-endian length then the
bytes) after it, in input order. Every problem with a request raises a ``FerryError`` subclass
whose message and ``details`` name the input.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ferry.errors import (
    InvalidRequest,
    InvalidShape,
    InvalidValue,
    PredictionFailed,
)
from ferry.server.serving.jsonbody import loads

__all__ = [
    "InferInput",
    "InferRequest",
    "RequestedOutput",
    "datatype_of",
    "encode_infer_response",
    "numpy_dtype_of",
    "parse_infer_request",
]

_Array = npt.NDArray[np.generic]

_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_KNOWN = sorted(_DTYPES)
_FLOAT_NAMES = {2: "FP16", 4: "FP32", 8: "FP64"}
_KIND_NAMES = {
    "b": "booleans",
    "i": "integers",
    "u": "integers",
    "f": "floats",
    "U": "strings",
    "O": "mixed or null values",
}
_LENGTH = struct.Struct("<I")
# numpy 1.x's NPY_MAXDIMS (numpy 2 allows 64); a 65-dimension shape was a 500 from numpy
MAX_RANK = 32


@dataclass(frozen=True, slots=True)
class InferInput:
    """One decoded input tensor; ``data`` is already reshaped to ``shape``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: npt.NDArray[np.generic]


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output the request names; ``binary`` is its ``parameters.binary_data`` if given."""

    name: str
    binary: bool | None


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded ``POST .../infer`` body."""

    id: str | None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None
    binary_output_default: bool
    parameters: dict[str, object]


# --- datatypes --------------------------------------------------------------------------------
def datatype_of(array: npt.NDArray[np.generic]) -> str:
    """The V2 datatype for a numpy array's dtype (object, str and bytes arrays are ``BYTES``)."""
    dtype = array.dtype
    kind = dtype.kind
    if kind == "b":
        return "BOOL"
    if kind == "i" and dtype.itemsize in (1, 2, 4, 8):
        return f"INT{dtype.itemsize * 8}"
    if kind == "u" and dtype.itemsize in (1, 2, 4, 8):
        return f"UINT{dtype.itemsize * 8}"
    if kind == "f" and dtype.itemsize in _FLOAT_NAMES:
        return _FLOAT_NAMES[dtype.itemsize]
    if kind in "OUS":
        return "BYTES"
    raise PredictionFailed(f"numpy dtype {dtype} has no V2 datatype", dtype=str(dtype))


def numpy_dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype for a V2 datatype (``BYTES`` is ``object``)."""
    try:
        return _DTYPES[datatype]
    except KeyError:
        raise InvalidRequest(
            f"unknown datatype {datatype!r}; known datatypes: {_KNOWN}",
            got=datatype,
            expected=_KNOWN,
        ) from None


# --- requests ---------------------------------------------------------------------------------
def parse_infer_request(body: bytes, header_length: int | None) -> InferRequest:
    """Decode an infer request body; ``header_length`` is ``Inference-Header-Content-Length``."""
    if header_length is None:
        header: bytes | memoryview = body
        binary_start = len(body)
    else:
        if not 0 <= header_length <= len(body):
            raise InvalidRequest(
                f"Inference-Header-Content-Length {header_length} does not fit a body of "
                f"{len(body)} bytes",
                header_length=header_length,
                body_length=len(body),
            )
        header = memoryview(body)[:header_length]
        binary_start = header_length
    doc = loads(header, "infer request")
    if not isinstance(doc, dict):
        raise InvalidRequest("infer request must be a JSON object")

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("request 'id' must be a string", got=request_id)
    parameters = _parameters(doc.get("parameters"), "request")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidRequest(
            "request parameters.binary_data_output must be true or false", got=binary_default
        )

    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidRequest("infer request needs 'inputs': a non-empty list of tensors")
    inputs: list[InferInput] = []
    names: set[str] = set()
    offset = binary_start
    for index, raw in enumerate(raw_inputs):
        tensor, offset = _parse_input(raw, index, body, offset)
        if tensor.name in names:
            raise InvalidRequest(f"input {tensor.name!r} is given twice", input=tensor.name)
        names.add(tensor.name)
        inputs.append(tensor)
    if offset != len(body):
        raise InvalidShape(
            f"{len(body) - offset} bytes of binary data follow the header but no input claims them",
            expected=offset - binary_start,
            got=len(body) - binary_start,
        )

    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_parse_outputs(doc.get("outputs")),
        binary_output_default=binary_default,
        parameters=parameters,
    )


def _parameters(raw: object, where: str, **details: object) -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} 'parameters' must be a JSON object", **details)
    return raw


def _parse_input(raw: object, index: int, body: bytes, offset: int) -> tuple[InferInput, int]:
    """Decode ``inputs[index]``; binary data starts at ``offset``. Returns the next offset."""
    if not isinstance(raw, dict):
        raise InvalidRequest(f"inputs[{index}] must be a JSON object", index=index)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"inputs[{index}] needs a 'name' string", index=index)
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidRequest(f"input {name!r} needs a 'datatype' string", input=name)
    if datatype not in _DTYPES:
        raise InvalidRequest(
            f"input {name!r} has unknown datatype {datatype!r}; known datatypes: {_KNOWN}",
            input=name,
            expected=_KNOWN,
            got=datatype,
        )
    shape = _parse_shape(raw.get("shape"), name)
    # Every element takes at least a byte of the body (JSON or binary), so a shape with more
    # than the body's length (zero dimensions counted as one, which numpy also sizes) cannot
    # describe it: [0, 2**62] passed the element count (0) and overflowed numpy's reshape.
    if math.prod(max(dim, 1) for dim in shape) > max(len(body), 1):
        raise InvalidShape(
            f"input {name!r} has shape {list(shape)}: more elements than a body of "
            f"{len(body)} bytes can carry",
            input=name,
            got=list(shape),
        )
    count = math.prod(shape)
    size = _parameters(raw.get("parameters"), f"input {name!r}", input=name).get("binary_data_size")
    data = raw.get("data")

    if size is None:
        if data is None:
            raise InvalidRequest(
                f"input {name!r} has neither 'data' nor parameters.binary_data_size", input=name
            )
        array = _from_json(data, name, datatype, count)
    else:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidRequest(
                f"input {name!r}: parameters.binary_data_size must be a non-negative integer",
                input=name,
                got=size,
            )
        if data is not None:
            raise InvalidRequest(
                f"input {name!r} has both 'data' and parameters.binary_data_size", input=name
            )
        available = len(body) - offset
        if size > available:
            raise InvalidShape(
                f"input {name!r} declares {size} bytes of binary data but only {available} "
                "remain in the body",
                input=name,
                expected=size,
                got=available,
            )
        array = _from_binary(body, offset, size, name, datatype, shape, count)
        offset += size
    return InferInput(name=name, datatype=datatype, shape=shape, data=array.reshape(shape)), offset


def _parse_shape(raw: object, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) for dim in raw
    ):
        raise InvalidRequest(
            f"input {name!r} needs a 'shape': a list of whole numbers", input=name, got=_brief(raw)
        )
    shape = tuple(raw)
    if len(shape) > MAX_RANK:
        raise InvalidShape(
            f"input {name!r} has {len(shape)} dimensions; at most {MAX_RANK} are supported",
            input=name,
            expected=MAX_RANK,
            got=len(shape),
        )
    if any(dim < 0 for dim in shape):
        raise InvalidShape(
            f"input {name!r} has negative dimensions in shape {list(shape)}",
            input=name,
            got=list(shape),
        )
    return shape


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _from_json(data: object, name: str, datatype: str, count: int) -> _Array:
    """A flat-or-nested JSON ``data`` list as an array of ``datatype`` holding ``count`` items."""
    if not isinstance(data, list):
        raise InvalidRequest(f"input {name!r}: 'data' must be a list", input=name)
    is_bytes = datatype == "BYTES"
    try:
        array: _Array = np.array(data, dtype=object) if is_bytes else np.asarray(data)
    except ValueError as exc:  # ragged nesting
        raise InvalidShape(
            f"input {name!r}: 'data' is not a regular nested list", input=name
        ) from exc
    if array.size != count:
        raise InvalidShape(
            f"input {name!r} has {array.size} elements but its shape needs {count}",
            input=name,
            expected=count,
            got=array.size,
        )
    if is_bytes:
        return _check_strings(array, name)
    return _convert_numeric(array, data, name, datatype)


def _check_strings(array: _Array, name: str) -> _Array:
    for value in array.ravel().tolist():
        if type(value) is not str:
            if isinstance(value, list):
                raise InvalidShape(
                    f"input {name!r}: 'data' is not a regular nested list", input=name
                )
            shown = repr(value)[:80]
            raise InvalidValue(
                f"input {name!r} of datatype BYTES must hold strings, got {shown}",
                input=name,
                expected="string",
                got=shown,
            )
    return array


def _convert_numeric(array: _Array, data: list[Any], name: str, datatype: str) -> _Array:
    target = _DTYPES[datatype]
    if array.size == 0:
        return array.astype(target)
    kind = array.dtype.kind
    if datatype == "BOOL":
        if kind != "b":
            raise _wrong_values(name, datatype, "true/false", kind)
        return array
    if target.kind in "iu":
        if kind in "iu":
            low, high = int(array.min()), int(array.max())
        elif kind in "fO":
            # numpy promotes int64 mixed with uint64 to float64: look at the exact values.
            values = np.array(data, dtype=object).ravel().tolist()
            if not all(type(value) is int for value in values):
                raise _wrong_values(name, datatype, "integers", kind)
            low, high = min(values), max(values)
            array = np.array(values, dtype=object)
        else:
            raise _wrong_values(name, datatype, "integers", kind)
        info = np.iinfo(target)
        if low < info.min or high > info.max:
            raise InvalidValue(
                f"input {name!r} has values outside the {datatype} range [{info.min}, {info.max}]",
                input=name,
                expected=[int(info.min), int(info.max)],
                got=[low, high],
            )
        return array.astype(target, copy=False)
    if kind == "O":
        array = _nullable_floats(array, name, datatype)
    elif kind not in "iuf":
        raise _wrong_values(name, datatype, "numbers", kind)
    if target.itemsize == 8:  # to FP64 nothing overflows; errstate cost 2-3 us a tensor
        converted = array.astype(target, copy=False)
    else:
        with np.errstate(over="ignore"):
            converted = array.astype(target, copy=False)
    # infinities here are values too large for the type, or ``Infinity`` (jsonbody.loads);
    # FP64 ones are refused by validation, naming the column and row
    if target.itemsize < 8 and np.isinf(converted).any():
        info_f = np.finfo(target)
        raise InvalidValue(
            f"input {name!r} has infinite values or values beyond the {datatype} range "
            f"(±{float(info_f.max)})",
            input=name,
            expected=float(info_f.max),
        )
    return converted


def _nullable_floats(array: _Array, name: str, datatype: str) -> _Array:
    """Numbers mixed with ``null`` (how NaN travels in V2 JSON) as float64 with NaN."""
    values = array.ravel().tolist()
    if not all(value is None or type(value) in (int, float) for value in values):
        raise _wrong_values(name, datatype, "numbers", "O")
    return np.array([math.nan if value is None else value for value in values], dtype=np.float64)


def _wrong_values(name: str, datatype: str, expected: str, kind: str) -> InvalidValue:
    got = _KIND_NAMES.get(kind, "other values")
    return InvalidValue(
        f"input {name!r} of datatype {datatype} must hold {expected}, got {got}",
        input=name,
        expected=expected,
        got=got,
    )


def _from_binary(
    body: bytes,
    offset: int,
    size: int,
    name: str,
    datatype: str,
    shape: tuple[int, ...],
    count: int,
) -> _Array:
    """``size`` raw bytes at ``offset`` as a flat array of ``count`` ``datatype`` elements."""
    if datatype == "BYTES":
        return _read_strings(body, offset, size, name, count)
    target = _DTYPES[datatype]
    expected = count * target.itemsize
    if size != expected:
        raise InvalidShape(
            f"input {name!r}: binary_data_size is {size} bytes but shape {list(shape)} of "
            f"{datatype} needs {expected}",
            input=name,
            expected=expected,
            got=size,
        )
    raw = np.frombuffer(body, dtype=target.newbyteorder("<"), count=count, offset=offset)
    if datatype == "BOOL" and count and raw.view(np.uint8).max() > 1:
        raise InvalidValue(
            f"input {name!r} of datatype BOOL has bytes other than 0 and 1", input=name
        )
    # astype copies: the result is native-endian, aligned and writable, like the JSON path.
    return raw.astype(target)


def _read_strings(body: bytes, offset: int, size: int, name: str, count: int) -> _Array:
    """``count`` length-prefixed BYTES elements; utf-8 decoded where they are valid utf-8."""
    region = body[offset : offset + size]
    items: list[str | bytes] = []
    append = items.append
    unpack = _LENGTH.unpack_from
    position = 0
    try:
        for _ in range(count):
            # struct.error once fewer than 4 bytes remain (or an element ran past the end)
            (length,) = unpack(region, position)
            start = position + 4
            position = start + length
            chunk = region[start:position]
            try:
                append(chunk.decode())
            except UnicodeDecodeError:
                append(chunk)
    except struct.error:
        raise _short_strings(name, size, count, len(items) - (position > size)) from None
    if position > size:
        raise _short_strings(name, size, count, count - 1)
    if position != size:
        raise InvalidShape(
            f"input {name!r}: binary_data_size is {size} bytes but its {count} BYTES elements "
            f"use {position}",
            input=name,
            expected=position,
            got=size,
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def _short_strings(name: str, size: int, count: int, index: int) -> InvalidShape:
    return InvalidShape(
        f"input {name!r}: {size} bytes of binary data end inside BYTES element {index} of {count}",
        input=name,
        expected=count,
        got=index,
    )


def _parse_outputs(raw: object) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidRequest("request 'outputs' must be a list")
    outputs: list[RequestedOutput] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidRequest(f"outputs[{index}] must be a JSON object", index=index)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"outputs[{index}] needs a 'name' string", index=index)
        if name in names:
            raise InvalidRequest(f"output {name!r} is requested twice", output=name)
        names.add(name)
        parameters = _parameters(item.get("parameters"), f"output {name!r}", output=name)
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidRequest(
                f"output {name!r}: parameters.binary_data must be true or false",
                output=name,
                got=binary,
            )
        outputs.append(RequestedOutput(name=name, binary=binary))
    return outputs or None


# --- responses --------------------------------------------------------------------------------
def encode_infer_response(
    *,
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: Sequence[tuple[str, npt.NDArray[np.generic], bool]],
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, its JSON header's length.

    ``outputs`` holds ``(name, array, send_as_binary)``. JSON outputs carry flat row-major
    ``data`` (NaN and infinities become ``null``); binary outputs carry
    ``parameters.binary_data_size`` and their raw bytes follow the JSON in output order.
    """
    entries: list[dict[str, object]] = []
    chunks: list[bytes] = []
    any_binary = False
    for name, array, binary in outputs:
        datatype = datatype_of(array)
        entry: dict[str, object] = {
            "name": name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if binary:
            raw = _to_raw(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
            any_binary = True
        else:
            entry["data"] = _to_json_data(array, name, datatype)
        entries.append(entry)

    doc: dict[str, object] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = entries
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not any_binary:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _to_json_data(array: _Array, name: str, datatype: str) -> object:
    if datatype != "BYTES":
        # orjson serialises native-endian contiguous arrays directly; ravel() is row-major.
        return array.astype(_DTYPES[datatype].newbyteorder("="), copy=False).ravel()
    strings: list[str] = []
    for value in array.ravel().tolist():
        if isinstance(value, bytes):
            try:
                strings.append(value.decode())
            except UnicodeDecodeError:
                raise InvalidValue(
                    f"output {name!r} holds bytes that are not utf-8 and cannot be sent as "
                    "JSON; request it with parameters.binary_data = true",
                    output=name,
                ) from None
        else:
            strings.append(value if isinstance(value, str) else str(value))
    return strings


def _to_raw(array: _Array, datatype: str) -> bytes:
    if datatype != "BYTES":
        return array.astype(_DTYPES[datatype].newbyteorder("<"), copy=False).tobytes()
    parts: list[bytes] = []
    for value in array.ravel().tolist():
        if isinstance(value, bytes):
            raw = value
        else:
            raw = (value if isinstance(value, str) else str(value)).encode()
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)
