"""The Open Inference Protocol V2 codec against tritonclient's own request and response code."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
import orjson
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import np_to_triton_dtype

from ferry.errors import (
    FerryError,
    InvalidRequest,
    InvalidShape,
    InvalidValue,
    MalformedBody,
    PredictionFailed,
)
from ferry.server.serving.protocols.v2_codec import (
    InferRequest,
    RequestedOutput,
    datatype_of,
    encode_infer_response,
    numpy_dtype_of,
    parse_infer_request,
)

Array = npt.NDArray[np.generic]


def _ints(dtype: type[np.integer]) -> Array:
    info = np.iinfo(dtype)
    return np.array([[info.min, 0, 1], [7, info.max - 1, info.max]], dtype=dtype)


def _floats(dtype: type[np.floating]) -> Array:
    info = np.finfo(dtype)
    return np.array([[0.1, -2.5, 0.0], [info.max, info.tiny, -info.max]], dtype=dtype)


SAMPLES: dict[str, Array] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": _ints(np.uint8),
    "UINT16": _ints(np.uint16),
    "UINT32": _ints(np.uint32),
    "UINT64": _ints(np.uint64),
    "INT8": _ints(np.int8),
    "INT16": _ints(np.int16),
    "INT32": _ints(np.int32),
    "INT64": _ints(np.int64),
    "FP16": _floats(np.float16),
    "FP32": _floats(np.float32),
    "FP64": _floats(np.float64),
    "BYTES": np.array([["a", "", "héllo"], ["x\x00y", "日本", "z" * 300]], dtype=object),
}


def _triton_request(
    arrays: dict[str, Array],
    binary: bool | dict[str, bool],
    outputs: list[httpclient.InferRequestedOutput] | None = None,
    **kwargs: object,
) -> tuple[bytes, int | None]:
    """A request body exactly as tritonclient's HTTP client would send it."""
    inputs = []
    for name, array in arrays.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        as_binary = binary[name] if isinstance(binary, dict) else binary
        tensor.set_data_from_numpy(array, binary_data=as_binary)
        inputs.append(tensor)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, **kwargs
    )
    return body, json_size


def _triton_result(body: bytes, header_length: int | None) -> httpclient.InferResult:
    return httpclient.InferResult.from_response_body(
        body, verbose=False, header_length=header_length
    )


def _as_text(array: Array) -> list[object]:
    return [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]


def _assert_same(got: Array, expected: Array) -> None:
    assert got.shape == expected.shape
    if expected.dtype == object:
        assert got.dtype == object
        assert _as_text(got) == _as_text(expected)
    else:
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


# --- requests built by tritonclient -----------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_parse_tritonclient_request_every_datatype(datatype: str, binary: bool) -> None:
    array = SAMPLES[datatype]
    body, json_size = _triton_request({"x": array}, binary)
    assert (json_size is not None) == binary

    request = parse_infer_request(body, json_size)

    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, array.shape)
    _assert_same(tensor.data, array)
    if datatype == "BYTES":
        assert all(type(v) is str for v in tensor.data.ravel().tolist())


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_round_trip_every_datatype(datatype: str, binary: bool) -> None:
    array = SAMPLES[datatype]
    request = parse_infer_request(*_triton_request({"x": array}, binary))
    outputs = [(t.name, t.data, binary) for t in request.inputs]

    body, header_length = encode_infer_response(
        model_name="echo", model_version="1", request_id=request.id, outputs=outputs
    )

    assert (header_length is not None) == binary
    _assert_same(_triton_result(body, header_length).as_numpy("x"), array)


def test_parse_mixed_inputs_request_id_and_outputs() -> None:
    arrays = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([b"\xff\xfe", b"ok"], dtype=object),
        "c": np.array([[1, 2]], dtype=np.int64),
        "d": np.array([True]),
    }
    outputs = [
        httpclient.InferRequestedOutput("y", binary_data=True),
        httpclient.InferRequestedOutput("z", binary_data=False),
    ]
    body, json_size = _triton_request(
        arrays,
        {"a": True, "b": True, "c": False, "d": True},
        outputs,
        request_id="req-7",
        parameters={"temperature": 0.5},
    )

    request = parse_infer_request(body, json_size)

    assert request.id == "req-7"
    assert request.parameters == {"temperature": 0.5}
    assert request.binary_output_default is False
    assert request.outputs == [RequestedOutput("y", True), RequestedOutput("z", False)]
    assert [t.name for t in request.inputs] == list(arrays)
    for tensor in request.inputs:
        if tensor.name != "b":
            _assert_same(tensor.data, arrays[tensor.name])
    # not utf-8: kept as bytes; utf-8: decoded
    assert request.inputs[1].data.tolist() == [b"\xff\xfe", "ok"]


def test_no_outputs_means_binary_output_default() -> None:
    request = parse_infer_request(*_triton_request({"x": SAMPLES["FP32"]}, binary=True))

    assert request.outputs is None
    assert request.binary_output_default is True
    assert request.id is None


def test_binary_input_is_writable_native_array() -> None:
    array = np.arange(5, dtype=np.float64)
    body, json_size = _triton_request({"x": array}, binary=True)

    data = parse_infer_request(body, json_size).inputs[0].data

    assert data.flags.writeable
    assert data.dtype.isnative


def _json_body(*inputs: dict[str, object], **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        pytest.param(
            {"datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
            np.array([[1, 2], [3, 4]], dtype=np.int32),
            id="nested",
        ),
        pytest.param(
            {"datatype": "FP64", "shape": [2, 2], "data": [1, 2.5, 3, 4]},
            np.array([[1, 2.5], [3, 4]]),
            id="flat-to-2d-ints-in-float",
        ),
        pytest.param(
            {"datatype": "FP32", "shape": [3], "data": [1.5, None, 2]},
            np.array([1.5, np.nan, 2], dtype=np.float32),
            id="null-is-nan",
        ),
        pytest.param(
            {"datatype": "FP32", "shape": [2, 0], "data": [[], []]},
            np.empty((2, 0), dtype=np.float32),
            id="empty",
        ),
        pytest.param(
            {"datatype": "BYTES", "shape": [0], "data": []},
            np.empty(0, dtype=object),
            id="empty-bytes",
        ),
        pytest.param(
            {"datatype": "UINT64", "shape": [2, 1], "data": [[0], [2**64 - 1]]},
            np.array([[0], [2**64 - 1]], dtype=np.uint64),
            id="uint64-max-nested",
        ),
        pytest.param(
            {"datatype": "BYTES", "shape": [1, 2], "data": [["a\x00", "b"]]},
            np.array([["a\x00", "b"]], dtype=object),
            id="bytes-nested-keeps-nul",
        ),
    ],
)
def test_parse_json_data_forms(tensor: dict[str, object], expected: Array) -> None:
    request = parse_infer_request(_json_body({"name": "x", **tensor}), None)

    _assert_same(request.inputs[0].data, expected)


def test_parse_keeps_request_fields() -> None:
    body = _json_body(
        {"name": "x", "datatype": "INT8", "shape": [1], "data": [1]},
        id="abc",
        parameters={"binary_data_output": True, "custom": [1]},
        outputs=[{"name": "y"}, {"name": "z", "parameters": {"binary_data": False}}],
    )

    request = parse_infer_request(body, None)

    assert request == InferRequest(
        id="abc",
        inputs=request.inputs,
        outputs=[RequestedOutput("y", None), RequestedOutput("z", False)],
        binary_output_default=True,
        parameters={"binary_data_output": True, "custom": [1]},
    )


def test_empty_outputs_list_names_no_outputs() -> None:
    body = _json_body({"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}, outputs=[])

    assert parse_infer_request(body, None).outputs is None


# --- bad requests -----------------------------------------------------------------------------
def _binary_body(header: dict[str, object], raw: bytes) -> tuple[bytes, int]:
    head = orjson.dumps(header)
    return head + raw, len(head)


def _fp32_binary(size: object, raw: bytes, **extra: object) -> tuple[bytes, int]:
    tensor = {"name": "x", "datatype": "FP32", "shape": [3], **extra}
    tensor["parameters"] = {"binary_data_size": size}
    return _binary_body({"inputs": [tensor]}, raw)


def _strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def _bytes_binary(shape: list[int], size: int, raw: bytes) -> tuple[bytes, int]:
    tensor: dict[str, object] = {"name": "x", "datatype": "BYTES", "shape": shape}
    tensor["parameters"] = {"binary_data_size": size}
    return _binary_body({"inputs": [tensor]}, raw)


def _one(**tensor: object) -> bytes:
    return _json_body({"name": "x", **tensor})


GOOD: dict[str, object] = {"datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}

BAD_REQUESTS: list[tuple[str, bytes, int | None, str | None]] = [
    ("malformed-json", b'{"inputs": [', None, None),
    ("not-an-object", b"[1, 2]", None, None),
    ("missing-inputs", b"{}", None, None),
    ("empty-inputs", _json_body(), None, None),
    ("inputs-not-list", orjson.dumps({"inputs": {"x": GOOD}}), None, None),
    ("input-not-object", orjson.dumps({"inputs": [5]}), None, None),
    ("missing-name", _json_body(GOOD), None, None),
    ("missing-shape", _one(datatype="FP32", data=[1.0]), None, "x"),
    ("missing-datatype", _one(shape=[1], data=[1.0]), None, "x"),
    ("unknown-datatype", _one(datatype="FLOAT32", shape=[1], data=[1.0]), None, "x"),
    ("lowercase-datatype", _one(datatype="fp32", shape=[1], data=[1.0]), None, "x"),
    ("shape-not-list", _one(datatype="FP32", shape=2, data=[1.0, 2.0]), None, "x"),
    ("shape-of-floats", _one(datatype="FP32", shape=[2.0], data=[1.0, 2.0]), None, "x"),
    ("shape-of-bools", _one(datatype="FP32", shape=[True], data=[1.0]), None, "x"),
    ("missing-data", _one(datatype="FP32", shape=[1]), None, "x"),
    ("data-not-list", _one(datatype="FP32", shape=[1], data=1.0), None, "x"),
    ("input-parameters-not-object", _one(**GOOD, parameters=[1]), None, "x"),
    ("duplicate-input", _json_body({"name": "x", **GOOD}, {"name": "x", **GOOD}), None, "x"),
    ("id-not-string", _json_body({"name": "x", **GOOD}, id=7), None, None),
    ("parameters-not-object", _json_body({"name": "x", **GOOD}, parameters=[]), None, None),
    (
        "binary-data-output-not-bool",
        _json_body({"name": "x", **GOOD}, parameters={"binary_data_output": "yes"}),
        None,
        None,
    ),
    ("outputs-not-list", _json_body({"name": "x", **GOOD}, outputs="y"), None, None),
    ("output-without-name", _json_body({"name": "x", **GOOD}, outputs=[{}]), None, None),
    (
        "output-binary-not-bool",
        _json_body(
            {"name": "x", **GOOD}, outputs=[{"name": "y", "parameters": {"binary_data": 1}}]
        ),
        None,
        None,
    ),
    ("header-longer-than-body", _one(**GOOD), 10_000, None),
    ("negative-header", _one(**GOOD), -1, None),
    ("header-cuts-json", _one(**GOOD), 5, None),
    ("data-and-binary", *_fp32_binary(12, bytes(12), data=[1.0, 2.0, 3.0]), "x"),
    ("negative-binary-size", *_fp32_binary(-4, b""), "x"),
    ("string-binary-size", *_fp32_binary("12", bytes(12)), "x"),
]


@pytest.mark.parametrize(
    ("body", "header_length", "input_name"),
    [pytest.param(body, length, name, id=case) for case, body, length, name in BAD_REQUESTS],
)
def test_invalid_request(body: bytes, header_length: int | None, input_name: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_infer_request(body, header_length)

    if input_name is not None:
        assert caught.value.details["input"] == input_name
        assert repr(input_name) in caught.value.message


def test_malformed_json_is_malformed_body() -> None:
    with pytest.raises(MalformedBody):
        parse_infer_request(b"\xff{", None)


BAD_SHAPES: list[tuple[str, bytes, int | None]] = [
    ("count-mismatch", _one(datatype="INT32", shape=[2, 2], data=[1, 2, 3]), None),
    ("ragged", _one(datatype="INT32", shape=[3], data=[[1, 2], [3]]), None),
    ("bytes-count-mismatch", _one(datatype="BYTES", shape=[3], data=["a", "b"]), None),
    ("bytes-ragged", _one(datatype="BYTES", shape=[2], data=[["a"], "b"]), None),
    ("negative-dim", _one(datatype="FP32", shape=[-1, 2], data=[1.0, 2.0]), None),
    ("binary-size-vs-shape", *_fp32_binary(8, bytes(8))),
    ("binary-bytes-missing", *_fp32_binary(12, bytes(8))),
    ("binary-without-header-length", _fp32_binary(12, b"")[0], None),
    ("binary-leftover", *_fp32_binary(12, bytes(16))),
    ("json-with-trailing-bytes", _one(**GOOD) + b"xxxx", len(_one(**GOOD))),
    ("bytes-element-truncated", *_bytes_binary([2], 10, _strings(b"ab", b"cdefgh")[:10])),
    ("bytes-too-few-elements", *_bytes_binary([3], 12, _strings(b"ab", b"cdef"))),
    ("bytes-size-too-big", *_bytes_binary([1], 9, _strings(b"ab") + b"xyz")),
    (
        "bytes-middle-element-overruns",
        *_bytes_binary([2], 12, struct.pack("<I", 100) + b"abcd" + _strings(b"")),
    ),
    ("bytes-no-elements-but-bytes", *_bytes_binary([0], 4, _strings(b""))),
]


@pytest.mark.parametrize(
    ("body", "header_length"),
    [pytest.param(body, length, id=case) for case, body, length in BAD_SHAPES],
)
def test_invalid_shape(body: bytes, header_length: int | None) -> None:
    with pytest.raises(InvalidShape) as caught:
        parse_infer_request(body, header_length)

    if "input" in caught.value.details:
        assert caught.value.details["input"] == "x"
        assert "'x'" in caught.value.message


BAD_VALUES: list[tuple[str, bytes, int | None]] = [
    ("strings-in-fp32", _one(datatype="FP32", shape=[2], data=["1.5", "2"]), None),
    ("string-mixed-in-fp32", _one(datatype="FP32", shape=[2], data=[1.5, "2"]), None),
    ("bools-in-fp32", _one(datatype="FP32", shape=[2], data=[True, False]), None),
    ("object-in-fp64", _one(datatype="FP64", shape=[2], data=[1.0, {"a": 1}]), None),
    ("fp16-overflow", _one(datatype="FP16", shape=[1], data=[70000.0]), None),
    ("fp32-overflow", _one(datatype="FP32", shape=[1], data=[1e300]), None),
    ("floats-in-int64", _one(datatype="INT64", shape=[2], data=[1.5, 2]), None),
    ("whole-float-in-int32", _one(datatype="INT32", shape=[1], data=[1.0]), None),
    ("null-in-int32", _one(datatype="INT32", shape=[2], data=[1, None]), None),
    ("bools-in-int32", _one(datatype="INT32", shape=[2], data=[True, False]), None),
    ("int8-too-big", _one(datatype="INT8", shape=[2], data=[1, 128]), None),
    ("int16-too-small", _one(datatype="INT16", shape=[1], data=[-32769]), None),
    ("uint8-negative", _one(datatype="UINT8", shape=[1], data=[-1]), None),
    ("uint64-negative", _one(datatype="UINT64", shape=[1], data=[-1]), None),
    ("int64-too-big", _one(datatype="INT64", shape=[1], data=[2**63]), None),
    ("uint64-mixed-negative", _one(datatype="UINT64", shape=[2], data=[-1, 2**64 - 1]), None),
    ("int64-mixed-uint64", _one(datatype="INT64", shape=[2], data=[-1, 2**64 - 1]), None),
    (
        "beyond-uint64",  # orjson reads integers past 64 bits as floats
        b'{"inputs": [{"name": "x", "datatype": "UINT64", "shape": [1], "data": [%d]}]}' % 2**64,
        None,
    ),
    ("ints-in-bool", _one(datatype="BOOL", shape=[2], data=[1, 0]), None),
    ("null-in-bool", _one(datatype="BOOL", shape=[2], data=[True, None]), None),
    ("strings-in-bool", _one(datatype="BOOL", shape=[1], data=["true"]), None),
    ("numbers-in-bytes", _one(datatype="BYTES", shape=[2], data=[1, 2]), None),
    ("null-in-bytes", _one(datatype="BYTES", shape=[2], data=["a", None]), None),
    (
        "bool-binary-not-0-or-1",
        *_binary_body(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "BOOL",
                        "shape": [2],
                        "parameters": {"binary_data_size": 2},
                    }
                ]
            },
            b"\x01\x02",
        ),
    ),
]


@pytest.mark.parametrize(
    ("body", "header_length"),
    [pytest.param(body, length, id=case) for case, body, length in BAD_VALUES],
)
def test_invalid_value(body: bytes, header_length: int | None) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_infer_request(body, header_length)

    assert caught.value.details["input"] == "x"
    assert "'x'" in caught.value.message


def test_out_of_range_names_expected_and_got() -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_infer_request(_one(datatype="UINT8", shape=[2], data=[3, 300]), None)

    assert caught.value.details == {"input": "x", "expected": [0, 255], "got": [3, 300]}


def test_binary_size_mismatch_names_expected_and_got() -> None:
    with pytest.raises(InvalidShape) as caught:
        parse_infer_request(*_fp32_binary(8, bytes(8)))

    assert caught.value.details == {"input": "x", "expected": 12, "got": 8}


# --- responses --------------------------------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_encode_every_datatype_decodes_in_tritonclient(datatype: str, binary: bool) -> None:
    array = SAMPLES[datatype]

    body, header_length = encode_infer_response(
        model_name="m", model_version=None, request_id=None, outputs=[("y", array, binary)]
    )

    result = _triton_result(body, header_length)
    _assert_same(result.as_numpy("y"), array)
    (output,) = result.get_response()["outputs"]
    assert output["datatype"] == datatype
    assert output["shape"] == [2, 3]
    assert ("data" in output) != binary
    assert ("parameters" in output) == binary


def test_encode_response_layout() -> None:
    outputs: list[tuple[str, Array, bool]] = [
        ("a", np.array([1, 2], dtype=np.int32), True),
        ("b", np.array([[0.5, np.nan]], dtype=np.float32), False),
        ("c", np.array([3.0], dtype=np.float64), True),
    ]

    body, header_length = encode_infer_response(
        model_name="m", model_version="2", request_id="r1", outputs=outputs
    )

    assert header_length is not None
    header = orjson.loads(body[:header_length])
    assert header == {
        "model_name": "m",
        "model_version": "2",
        "id": "r1",
        "outputs": [
            {
                "name": "a",
                "datatype": "INT32",
                "shape": [2],
                "parameters": {"binary_data_size": 8},
            },
            {"name": "b", "datatype": "FP32", "shape": [1, 2], "data": [0.5, None]},
            {
                "name": "c",
                "datatype": "FP64",
                "shape": [1],
                "parameters": {"binary_data_size": 8},
            },
        ],
    }
    assert list(header) == ["model_name", "model_version", "id", "outputs"]
    assert body[header_length:] == outputs[0][1].tobytes() + outputs[2][1].tobytes()
    np.testing.assert_array_equal(_triton_result(body, header_length).as_numpy("b"), outputs[1][1])


def test_encode_json_only_has_no_header_length() -> None:
    body, header_length = encode_infer_response(
        model_name="m",
        model_version=None,
        request_id=None,
        outputs=[("y", np.array([1, 2], dtype=np.uint8), False)],
    )

    assert header_length is None
    assert orjson.loads(body) == {
        "model_name": "m",
        "outputs": [{"name": "y", "datatype": "UINT8", "shape": [2], "data": [1, 2]}],
    }


def test_encode_empty_binary_output_still_binary() -> None:
    body, header_length = encode_infer_response(
        model_name="m",
        model_version=None,
        request_id=None,
        outputs=[("y", np.empty((0, 3), dtype=np.float32), True)],
    )

    assert header_length == len(body)
    assert _triton_result(body, header_length).as_numpy("y").shape == (0, 3)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    "array",
    [
        pytest.param(np.arange(6, dtype=np.int32).reshape(2, 3).T, id="transposed"),
        pytest.param(np.arange(6, dtype=">f4").reshape(3, 2), id="big-endian"),
        pytest.param(np.array(7, dtype=np.int16), id="scalar"),
        pytest.param(np.array(["ab", "c"]), id="numpy-str"),
        pytest.param(np.array([b"ab", b"c"]), id="numpy-bytes"),
        pytest.param(np.array(["a", 1, 2.5], dtype=object), id="object-mixed"),
    ],
)
def test_encode_unusual_arrays(array: Array, binary: bool) -> None:
    body, header_length = encode_infer_response(
        model_name="m", model_version=None, request_id=None, outputs=[("y", array, binary)]
    )

    got = _triton_result(body, header_length).as_numpy("y")
    if array.dtype.kind in "OUS":
        assert _as_text(got) == [str(v) for v in _as_text(array)]
    else:
        np.testing.assert_array_equal(got, array)
        assert got.dtype == array.dtype.newbyteorder("=")


def test_encode_non_utf8_bytes() -> None:
    array = np.array([b"\xff", b"ok"], dtype=object)
    body, header_length = encode_infer_response(
        model_name="m", model_version=None, request_id=None, outputs=[("y", array, True)]
    )
    assert _triton_result(body, header_length).as_numpy("y").tolist() == [b"\xff", b"ok"]

    with pytest.raises(InvalidValue) as caught:
        encode_infer_response(
            model_name="m", model_version=None, request_id=None, outputs=[("y", array, False)]
        )
    assert caught.value.details["output"] == "y"


# --- datatypes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.bool_, "BOOL"),
        (np.uint8, "UINT8"),
        (np.uint16, "UINT16"),
        (np.uint32, "UINT32"),
        (np.uint64, "UINT64"),
        (np.int8, "INT8"),
        (np.int16, "INT16"),
        (np.int32, "INT32"),
        (np.int64, "INT64"),
        (np.longlong, "INT64"),
        (np.float16, "FP16"),
        (np.float32, "FP32"),
        (">f4", "FP32"),
        (np.float64, "FP64"),
        (object, "BYTES"),
        (np.str_, "BYTES"),
        (np.bytes_, "BYTES"),
    ],
)
def test_datatype_of(dtype: npt.DTypeLike, datatype: str) -> None:
    assert datatype_of(np.empty(0, dtype=dtype)) == datatype


@pytest.mark.parametrize("dtype", [np.complex64, "datetime64[s]", "V4"])
def test_datatype_of_unsupported(dtype: npt.DTypeLike) -> None:
    with pytest.raises(PredictionFailed):
        datatype_of(np.empty(0, dtype=dtype))


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_numpy_dtype_of_inverts_datatype_of(datatype: str) -> None:
    assert datatype_of(np.empty(0, dtype=numpy_dtype_of(datatype))) == datatype
    assert numpy_dtype_of(datatype) == SAMPLES[datatype].dtype


@pytest.mark.parametrize("datatype", ["fp32", "BF16", "FLOAT", ""])
def test_numpy_dtype_of_unknown(datatype: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        numpy_dtype_of(datatype)
    assert isinstance(caught.value, FerryError)
    assert repr(datatype) in caught.value.message


# --- absurd shapes and ranks: 400s naming the input, never numpy's errors --------------------
def _json_input(shape: object, data: object) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": data}]}
    )


@pytest.mark.parametrize(
    ("shape", "data", "error"),
    [
        ([0, 2**62], [], InvalidShape),  # 0 elements, but numpy cannot size it
        ([0, 2**31, 2**31], [], InvalidShape),
        ([1] * 65, [1.0], InvalidShape),  # numpy 2 stops at 64 dimensions
        ([1] * 33, [1.0], InvalidShape),
        ([2, -2], [1.0] * 4, InvalidShape),
        ([2, 1.5], [1.0] * 3, InvalidRequest),
        ([2, "2"], [1.0] * 4, InvalidRequest),
        ([2, True], [1.0] * 2, InvalidRequest),
        ([2, 2], [1.0] * 3, InvalidShape),  # the data does not fill the shape
    ],
)
def test_absurd_shapes_name_the_input(shape: object, data: object, error: type) -> None:
    with pytest.raises(error) as caught:
        parse_infer_request(_json_input(shape, data), None)
    assert "'x'" in caught.value.message
    assert caught.value.details["input"] == "x"


def test_binary_shapes_larger_than_the_body_are_refused() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [0, 2**62],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 0},
                }
            ]
        }
    )
    with pytest.raises(InvalidShape, match="'x' has shape"):
        parse_infer_request(header, len(header))


def test_a_32_dimension_tensor_still_parses() -> None:
    parsed = parse_infer_request(_json_input([1] * 32, [2.5]), None)
    assert parsed.inputs[0].data.shape == (1,) * 32
