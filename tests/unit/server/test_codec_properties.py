"""Property tests over the three codecs: random JSON, CSV and V2 bodies against served iris and
mixed-type models never get a 5xx. In process (Starlette's TestClient over the real app) for
speed; every answer must be a 2xx or a 4xx in its protocol's error shape."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.model import load
from ferry.server.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x nudges TestClient users towards httpx2; httpx is what Ferry's client uses
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

# Finite but huge inputs (1e308) overflow inside the model's own arithmetic: numpy warns
# (RuntimeWarning: overflow encountered in matmul) and answers inf, and a server, which does
# not turn warnings into errors as this suite does, answers 200. Validation's own casts are
# tested with warnings as errors in tests/unit/model/test_validation.py.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MIXED = ["age", "income", "member", "city", "referrer"]
MODELS = ["iris", "mixed"]
# the database stays out of the repository (and out of .hypothesis/): every run starts afresh
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def client(iris_bundle: Path, mixed_bundle: Path) -> Iterator[TestClient]:
    app = create_app(None, [load(iris_bundle), load(mixed_bundle)])
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


def check(response: Any, path: str) -> None:
    """A 2xx, or a 4xx whose body is the protocol's error shape; never a 5xx."""
    assert response.status_code < 500, (path, response.status_code, response.text[:1500])
    if response.status_code < 400:
        return
    answer = response.json()
    if path.startswith("/v2"):
        assert isinstance(answer["error"], str)
    elif path.startswith(("/invocations", "/mlflow")):
        assert answer["error_code"]
        assert answer["message"]
    else:
        assert answer["error"]["code"]
        assert isinstance(answer["error"]["details"], dict)


# --- values: what callers send, including what they should not ------------------------------
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0, -1, 2**63, -(2**63) - 1, 2**64, 1e308, -1e308, 3.4e38, 1e-320]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), NUMBERS, st.text(max_size=20), st.sampled_from(["paris", "5.1"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NAMES = st.one_of(st.sampled_from(IRIS + MIXED + ["x", "outputs", ""]), st.text(max_size=10))


def dumps(value: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity appear as words, as some clients send them."""
    try:
        return json.dumps(value, allow_nan=True).encode()
    except ValueError:  # an int too long for str(): send its digits' worth of nines
        return b"9" * 5000


# --- bodies shaped like each model's signature, with values that fit, nearly fit, or not ----
FINITE = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000))
FITTING: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(IRIS, FINITE),
    "age": st.one_of(st.integers(0, 120), st.none()),
    "income": st.one_of(FINITE, st.none()),
    "member": st.booleans(),
    "city": st.sampled_from(["paris", "lyon", "nice", "rome"]),
    "referrer": st.one_of(st.none(), st.sampled_from(["ad", "friend", "tv"])),
}
SCHEMA = {"iris": IRIS, "mixed": MIXED}


@st.composite
def cell(draw: st.DrawFn, name: str) -> Any:
    """A value for column ``name``: one that fits, or one time in twenty anything at all (a
    request then has a fair chance of reaching the model: a third of them did)."""
    return draw(SCALARS if draw(st.integers(0, 19)) == 0 else FITTING[name])


@st.composite
def table(draw: st.DrawFn, model: str) -> tuple[list[str], list[list[Any]]]:
    """Column names (the model's, at times one short, one unknown or shuffled) and rows."""
    names = list(SCHEMA[model])
    change = draw(st.integers(0, 19))
    if change == 0:
        names.pop(draw(st.integers(0, len(names) - 1)))
    elif change == 1:
        names.append(draw(NAMES))
    elif change == 2:
        names = draw(st.permutations(names))
    n_rows = draw(st.integers(1, 4))
    cells = [
        [draw(cell(name)) if name in FITTING else draw(SCALARS) for name in names]
        for _ in range(n_rows)
    ]
    return names, cells


@st.composite
def native_bodies(draw: st.DrawFn, model: str) -> Any:
    names, cells = draw(table(model))
    records = [dict(zip(names, row, strict=True)) for row in cells]
    layouts = [
        {"instances": records},
        {"instances": cells},
        {"inputs": {name: [row[i] for row in cells] for i, name in enumerate(names)}},
        {"inputs": records, "outputs": draw(st.lists(NAMES, max_size=2))},
        draw(VALUES),
    ]
    return layouts[draw(st.integers(0, len(layouts) - 1))]


@st.composite
def mlflow_bodies(draw: st.DrawFn, model: str) -> Any:
    names, cells = draw(table(model))
    records = [dict(zip(names, row, strict=True)) for row in cells]
    layouts = [
        {"dataframe_records": records},
        {"dataframe_split": {"columns": names, "data": cells}},
        {"dataframe_split": {"data": cells}},
        {"instances": records},
        {"inputs": {name: [row[i] for row in cells] for i, name in enumerate(names)}},
        draw(VALUES),
    ]
    return layouts[draw(st.integers(0, len(layouts) - 1))]


@EXAMPLES
@given(model=st.sampled_from(MODELS), data=st.data())
def test_json_bodies_never_get_a_5xx(client: TestClient, model: str, data: st.DataObject) -> None:
    body, mlflow = data.draw(native_bodies(model)), data.draw(mlflow_bodies(model))
    path = f"/v1/models/{model}/predict"
    check(
        client.post(path, content=dumps(body), headers={"content-type": "application/json"}), path
    )
    path = f"/mlflow/{model}/invocations"
    response = client.post(
        path, content=dumps(mlflow), headers={"content-type": "application/json"}
    )
    check(response, path)


# --- CSV, and the GET query string, whose cells are parsed by the signature -------------------
CELLS = st.one_of(
    st.text(max_size=12),
    NUMBERS.map(lambda n: str(n) if not isinstance(n, int) or abs(n) < 10**300 else "9" * 5000),
    st.sampled_from(["inf", "-Infinity", "1e999", "nan", "NA", "", "true", "no", "3.0", '"q"']),
    st.just("<big>"),  # a cell past the csv module's 131,072-character limit (made below:
)  # hypothesis warns about, and so fails on, examples that large)
BIG = "1" * 131_073


def as_text(value: Any) -> str:
    """A JSON value as a CSV cell or query value says it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**300:
        return "9" * 5000
    return str(value)


@EXAMPLES
@given(
    model=st.sampled_from(MODELS),
    data=st.data(),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    quoted=st.booleans(),
)
def test_csv_and_query_bodies_never_get_a_5xx(
    client: TestClient, model: str, data: st.DataObject, ending: str, quoted: bool
) -> None:
    import csv
    import io

    names, values = data.draw(table(model))
    cells = [
        [as_text(v) if data.draw(st.integers(0, 19)) else data.draw(CELLS) for v in row]
        for row in values
    ]
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, lineterminator=ending, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL
    )
    writer.writerows([names, *cells])
    body = buffer.getvalue().replace("<big>", BIG).encode()
    for path in (f"/v1/models/{model}/predict", f"/mlflow/{model}/invocations"):
        check(client.post(path, content=body, headers={"content-type": "text/csv"}), path)
    path = f"/v1/models/{model}/predict"
    query = {name: value[:2000] for name, value in zip(names, cells[0], strict=True)}
    check(client.get(path, params=query), path)


# --- V2: JSON tensors, and binary tensors after a JSON header -----------------------------------
DATATYPES = st.one_of(
    st.sampled_from(["BOOL", "INT8", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64", "BYTES"]),
    st.text(max_size=6),
)
SHAPES = st.one_of(
    st.lists(st.integers(min_value=-2, max_value=6), max_size=4),
    st.lists(st.sampled_from([0, 1, 4, 2**31, 2**62, 2**63 - 1]), max_size=4),
    st.integers(min_value=30, max_value=70).map(lambda n: [1] * n),
    VALUES,
)
TENSOR_NAMES = st.one_of(st.sampled_from(IRIS + MIXED + ["x", "input-0"]), st.text(max_size=8))


V2_TYPES = {
    **dict.fromkeys(IRIS, "FP64"),
    "age": "INT64",
    "income": "FP64",
    "member": "BOOL",
    "city": "BYTES",
    "referrer": "BYTES",
}
NUMPY_TYPES = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "INT32": "<i4", "BOOL": "u1"}


@st.composite
def fitting_tensors(draw: st.DrawFn, model: str) -> list[tuple[dict[str, Any], list[Any]]]:
    """The model's inputs as V2 tensors (one [n, 4] tensor, or one per column), each with its
    values: what a Triton or KServe client sends, with a wrong datatype or shape now and then."""
    n_rows = draw(st.integers(0, 3))
    # non-finite floats one time in ten (in JSON they are words, which orjson refuses)
    floats = st.one_of(*[st.floats(allow_nan=False, allow_infinity=False)] * 9, st.floats())
    if model == "iris" and draw(st.booleans()):
        datatype = draw(st.sampled_from(["FP64", "FP32", "FP16", "INT64"]))
        values = draw(st.lists(floats | FINITE, min_size=4 * n_rows, max_size=4 * n_rows))
        return [({"name": "x", "datatype": datatype, "shape": [n_rows, 4]}, values)]
    tensors = []
    for name in SCHEMA[model]:
        datatype = V2_TYPES[name] if draw(st.integers(0, 19)) else draw(DATATYPES)
        values = [
            draw(st.one_of(FITTING[name], floats) if datatype.startswith("FP") else cell(name))
            for _ in range(n_rows)
        ]
        shape = [n_rows] if draw(st.integers(0, 19)) else draw(SHAPES)
        tensors.append(({"name": name, "datatype": datatype, "shape": shape}, values))
    return tensors


def binary_of(datatype: str, values: list[Any]) -> bytes | None:
    """The tensor's raw little-endian bytes, or None where the values do not pack."""
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            return None
        encoded = [v.encode() for v in values]
        return b"".join(len(e).to_bytes(4, "little") + e for e in encoded)
    dtype = NUMPY_TYPES.get(datatype)
    if dtype is None:
        return None
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inf/nan cast to ints
            return np.asarray(values, dtype=np.float64).astype(dtype).tobytes()
    except (TypeError, ValueError, OverflowError):
        return None


@st.composite
def v2_bodies(draw: st.DrawFn, model: str) -> tuple[bytes, dict[str, str]]:
    binary = draw(st.booleans())
    fitting = draw(st.integers(0, 3)) > 0
    inputs: list[Any] = []
    raw = b""
    tensors = draw(fitting_tensors(model)) if fitting else []
    if not fitting:
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            spec = {"name": draw(TENSOR_NAMES), "datatype": draw(DATATYPES), "shape": draw(SHAPES)}
            tensors.append((spec, draw(st.lists(st.floats(), max_size=8) | VALUES)))
    for spec, values in tensors:
        tensor: dict[str, Any] = dict(spec)
        packed = (
            binary_of(spec["datatype"], values) if binary and isinstance(values, list) else None
        )
        if packed is not None:
            packed = packed[: draw(st.sampled_from([len(packed)] * 8 + [0, len(packed) // 2]))]
            exact = draw(st.integers(0, 9)) > 0
            size = len(packed) if exact else draw(st.integers(min_value=-1, max_value=80))
            tensor["parameters"] = {"binary_data_size": size}
            raw += packed
        else:
            tensor["data"] = values
        inputs.append(tensor)
    doc: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        names = st.sampled_from(["predictions", "probabilities"]) | NAMES
        doc["outputs"] = draw(st.lists(st.fixed_dictionaries({"name": names}), max_size=2))
    if draw(st.booleans()):
        doc["id"] = draw(st.text(max_size=10) if draw(st.integers(0, 9)) else VALUES)
    head = dumps(doc)
    if not raw:
        return head, {"content-type": "application/json"}
    exact = draw(st.integers(0, 9)) > 0
    length = len(head) if exact else draw(st.integers(min_value=-3, max_value=len(head) + 8))
    return head + raw, {"inference-header-content-length": str(length)}


@EXAMPLES
@given(model=st.sampled_from(MODELS), data=st.data())
def test_v2_bodies_never_get_a_5xx(client: TestClient, model: str, data: st.DataObject) -> None:
    body, headers = data.draw(v2_bodies(model))
    path = f"/v2/models/{model}/infer"
    check(client.post(path, content=body, headers=headers), path)
