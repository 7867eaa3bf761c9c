"""Issue 13's input table over a real ``ferry serve``: every row the caller's error (4xx, in each
protocol's error shape, naming the field), CR-only CSV read right, request ids the server's own."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import ServeFactory

pytestmark = pytest.mark.integration

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
HEADER = ",".join(COLUMNS)
P = "/v1/models/iris/predict"
V2 = "/v2/models/iris/infer"
JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}
HUGE = "9" * 5000
TOKENS = {
    "inf": "inf",
    "-inf": "-inf",
    "Infinity": "Infinity",
    "1e999": "1e999",
    "5000-digits": HUGE,
}


@dataclass(frozen=True)
class Bad:
    id: str
    path: str
    body: bytes | None
    status: int
    names: str  # what the error message must name (a column, an input, a parameter)
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def csv_row(first: str) -> bytes:
    return f"{HEADER}\n1,1,1,1\n{first},3.5,1.4,0.2\n".encode()


def v2_binary(datatype: str, values: list[float]) -> tuple[bytes, dict[str, str]]:
    raw = struct.pack(f"<{len(values)}{'f' if datatype == 'FP32' else 'd'}", *values)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, len(values)],
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    return head + raw, {**JSON, "inference-header-content-length": str(len(head))}


def v2_json(shape: object, data: object, datatype: str = "FP64") -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
    )


def v2_text(token: str) -> bytes:
    """A V2 JSON body with ``token`` written as a number (which JSON has no word for)."""
    return (
        '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", '
        f'"data": [{token}, 1, 1, 1]}}]}}'
    ).encode()


def cases() -> list[Bad]:
    table: list[Bad] = []
    for label, token in TOKENS.items():
        query = f"?sepal_length={token}&sepal_width=1&petal_length=1&petal_width=1"
        json_row = f"[[1, 1, 1, 1], [{token}, 3.5, 1.4, 0.2]]".encode()
        # JSON has no word for infinity: Infinity, 1e999 and 5,000 digits (which Python's
        # json.dumps and clients write) are read and refused naming the column; inf is no
        # JSON at all, a malformed body
        word = token.lstrip("-") == "inf"
        native = (400, "JSON") if word else (422, "sepal_length")
        other = "JSON" if word else "sepal_length"
        table += [
            Bad(f"csv-{label}", P, csv_row(token), 422, "sepal_length", headers=CSV),
            Bad(f"mlflow-csv-{label}", "/invocations", csv_row(token), 400, "sepal_length",
                headers=CSV),
            Bad(f"get-{label}", P + query, None, 422, "sepal_length", method="GET"),
            Bad(f"json-{label}", P, b'{"instances": ' + json_row + b"}", *native),
            Bad(f"mlflow-json-{label}", "/invocations", b'{"instances": ' + json_row + b"}",
                400, other),
            Bad(f"v2-json-{label}", V2, v2_text(token), 400, other),
        ]  # fmt: skip
    for datatype in ("FP32", "FP64"):
        for value in (float("inf"), float("-inf")):
            body, headers = v2_binary(datatype, [1.0, value, 1.0, 1.0])
            table.append(
                Bad(f"v2-{datatype}-{value}", V2, body, 400, "sepal_width", headers=headers)
            )
    big_cell = f"{HEADER}\n{'1' * 131_073},1,1,1\n".encode()
    table += [
        Bad("csv-cell-over-131072", P, big_cell, 413, "131072", headers=CSV),
        Bad("mlflow-csv-cell-over-131072", "/invocations", big_cell, 413, "131072", headers=CSV),
        Bad("v2-shape-0-2^62", V2, v2_json([0, 2**62], []), 400, "'x'"),
        Bad("v2-65-dimensions", V2, v2_json([1] * 65, [1.0]), 400, "'x'"),
        Bad("v2-negative-dimension", V2, v2_json([1, -4], [1.0] * 4), 400, "'x'"),
        Bad("v2-fractional-dimension", V2, v2_json([1, 4.5], [1.0] * 4), 400, "'x'"),
        Bad("v2-size-mismatch", V2, v2_json([2, 4], [1.0] * 4), 400, "'x'"),
        Bad("v2-fp32-out-of-range", V2, v2_json([1, 4], [1e300, 1, 1, 1], "FP32"), 400, "'x'"),
        Bad("window-overflow", "/v1/models/iris/performance?window=99999999999d", None, 400,
            "window", method="GET"),
        Bad("since-overflow", "/api/v1/models/iris/predictions?since=99999999999d", None, 400,
            "since", method="GET"),
        Bad("until-overflow", "/api/v1/models/iris/predictions?until=1000000000000w", None, 400,
            "until", method="GET"),
    ]  # fmt: skip
    return table


CASES = cases()


@pytest.fixture(scope="module")
def url(serve: ServeFactory, iris_bundle: Path) -> str:
    return serve(iris_bundle, "--log-predictions", "all")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_input_table_is_the_callers_error(case: Bad, url: str) -> None:
    response = httpx.request(
        case.method, url + case.path, content=case.body, headers=case.headers, timeout=30
    )
    assert response.status_code == case.status, response.text
    answer = response.json()
    if case.path.startswith("/v2"):
        message = answer["error"]
        assert isinstance(message, str)
    elif case.path.startswith("/invocations"):
        assert answer["error_code"] == "BAD_REQUEST"
        message = answer["message"]
    else:
        error = answer["error"]
        message = error["message"]
        assert isinstance(error["details"], dict)
        if case.status == 422:
            assert error["details"]["column"] == "sepal_length"
            assert error["details"]["row"] == (0 if case.method == "GET" else 1)
    assert case.names in message
    assert len(response.content) < 2000  # the caller's 5,000-digit number is not echoed


def test_every_line_ending_style_reads_the_same_rows(
    url: str, iris_model: LogisticRegression
) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    expected = iris_model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    lines = [HEADER, *(",".join(map(str, row)) for row in rows)]
    for ending in ("\n", "\r\n", "\r"):
        body = (ending.join(lines) + ending).encode()
        for path in (P, "/invocations"):
            response = httpx.post(url + path, content=body, headers=CSV)
            assert response.status_code == 200, (ending, path, response.text)
            assert response.json()["predictions"] == expected


def internal_errors(url: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith('ferry_errors_total{code="internal"}'):
            return float(line.split()[-1])
    return 0.0


def test_no_500_and_the_server_keeps_serving(url: str) -> None:
    """After the whole table, /metrics counts no internal error and no prediction_failed."""
    text = httpx.get(url + "/metrics").text
    assert 'code="prediction_failed"' not in text
    assert internal_errors(url) == 0.0
    good = httpx.post(url + P, json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert good.status_code == 200


def logged(url: str, request_id: str) -> httpx.Response:
    """The logged prediction (written about a second after it is answered)."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{url}/api/v1/predictions/{request_id}")
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_request_ids_are_the_servers_and_a_reused_client_id_finds_no_wrong_request(
    url: str,
) -> None:
    one = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    two = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    shared = {"x-request-id": f"order-{time.time_ns()}"}
    earlier = httpx.post(url + P, json=one, headers=shared)
    later = httpx.post(url + P, json=two, headers=shared)
    for response in (earlier, later):
        assert response.status_code == 200
        assert response.headers["x-request-id"] == response.json()["request_id"]
        assert response.headers["x-client-request-id"] == shared["x-request-id"]
        assert len(response.json()["request_id"]) == 32  # a UUIDv7 of the server's own
    earlier_id, later_id = earlier.json()["request_id"], later.json()["request_id"]
    assert earlier_id != later_id

    found = logged(url, earlier_id)
    assert found.status_code == 200
    assert found.json()["rows"] == 1
    assert found.json()["client_request_id"] == shared["x-request-id"]
    feedback = httpx.post(
        url + "/v1/models/iris/feedback", json={"request_id": earlier_id, "truth": 0}
    )
    assert feedback.status_code == 200, feedback.text
    ambiguous = logged(url, shared["x-request-id"])
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"]["code"] == "ambiguous_request_id"
    assert set(ambiguous.json()["error"]["details"]["request_ids"]) == {earlier_id, later_id}

    # a client id of its own is found by it; a malformed one (too long, odd characters) is
    # ignored: the request is answered, under the server's id, and nothing is echoed
    own = {"x-request-id": f"solo-{time.time_ns()}"}
    solo = httpx.post(url + P, json=one, headers=own)
    assert logged(url, own["x-request-id"]).json()["request_id"] == solo.json()["request_id"]
    for bad in ("a" * 200, "has space", "a/b", "x" * 60_000):
        response = httpx.post(url + P, json=one, headers={"x-request-id": bad})
        if response.status_code == 431:  # a header-size limit came first: also refused
            continue
        assert response.status_code == 200, response.text
        assert "x-client-request-id" not in response.headers
        assert response.headers["x-request-id"] == response.json()["request_id"] != bad
