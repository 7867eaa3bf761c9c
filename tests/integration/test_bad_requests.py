"""Every kind of bad request gets the right 4xx and error code, and the server keeps serving."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import ServeFactory

pytestmark = pytest.mark.integration

SMALL_BODY_LIMIT = 4096
GOOD_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}


@dataclass(frozen=True)
class Bad:
    id: str
    path: str
    body: bytes | None
    status: int
    code: str  # Ferry's error code, or the MLflow error_code; "" for V2 (a string error)
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def rows(*records: dict[str, object]) -> bytes:
    import orjson

    return orjson.dumps({"instances": list(records)})


def body(value: object) -> bytes:
    import orjson

    return orjson.dumps(value)


P = "/v1/models/iris/predict"
CASES = [
    # --- Ferry's native protocol ---------------------------------------------------------
    Bad("malformed-json", P, b'{"instances": [', 400, "malformed_body"),
    Bad("empty-body", P, b"", 400, "malformed_body"),
    Bad("top-level-array", P, body([GOOD_ROW]), 400, "invalid_request"),
    Bad(
        "text-plain",
        P,
        b"hello",
        415,
        "unsupported_media_type",
        headers={"content-type": "text/plain"},
    ),
    Bad(
        "form-encoded",
        P,
        b"a=1",
        415,
        "unsupported_media_type",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Bad("unknown-model", "/v1/models/nope/predict", rows(GOOD_ROW), 404, "model_not_found"),
    Bad(
        "unknown-version",
        "/v1/models/iris/versions/9/predict",
        rows(GOOD_ROW),
        404,
        "version_not_found",
    ),
    Bad(
        "unknown-alias", "/v1/models/iris@staging/predict", rows(GOOD_ROW), 404, "version_not_found"
    ),
    Bad(
        "missing-column",
        P,
        rows({k: v for k, v in GOOD_ROW.items() if k != "petal_width"}),
        422,
        "missing_column",
    ),
    Bad("extra-column", P, rows({**GOOD_ROW, "colour": "red"}), 422, "unknown_column"),
    Bad("string-in-float", P, rows({**GOOD_ROW, "sepal_length": "wide"}), 422, "invalid_value"),
    Bad(
        "numeric-string-in-float",
        P,
        rows({**GOOD_ROW, "sepal_length": "5.1"}),
        422,
        "invalid_value",
    ),
    Bad("bool-in-float", P, rows({**GOOD_ROW, "sepal_width": True}), 422, "invalid_value"),
    Bad("null-not-nullable", P, rows({**GOOD_ROW, "petal_length": None}), 422, "invalid_value"),
    Bad("list-in-float", P, rows({**GOOD_ROW, "petal_length": [1.0, 2.0]}), 422, "invalid_value"),
    Bad("object-in-float", P, rows({**GOOD_ROW, "petal_length": {"x": 1}}), 422, "invalid_value"),
    Bad("empty-instances", P, body({"instances": []}), 422, "empty_batch"),
    Bad("short-row", P, body({"instances": [[5.1, 3.5, 1.4]]}), 422, "invalid_shape"),
    Bad("instances-not-list", P, body({"instances": {"a": 1}}), 422, "invalid_shape"),
    Bad("mixed-row-kinds", P, body({"instances": [GOOD_ROW, [1, 2, 3, 4]]}), 422, "invalid_shape"),
    Bad("both-layouts", P, body({"instances": [GOOD_ROW], "inputs": {}}), 400, "invalid_request"),
    Bad("no-layout", P, body({"outputs": ["label"]}), 400, "invalid_request"),
    Bad("unknown-field", P, body({"instances": [GOOD_ROW], "rows": 1}), 400, "invalid_request"),
    Bad(
        "unknown-output",
        P,
        body({"instances": [GOOD_ROW], "outputs": ["embedding"]}),
        422,
        "unknown_output",
    ),
    Bad(
        "outputs-not-list",
        P,
        body({"instances": [GOOD_ROW], "outputs": "label"}),
        400,
        "invalid_request",
    ),
    Bad(
        "ragged-columns",
        P,
        body(
            {
                "inputs": {
                    "sepal_length": [1.0, 2.0],
                    "sepal_width": [1.0],
                    "petal_length": [1.0],
                    "petal_width": [1.0],
                }
            }
        ),
        422,
        "invalid_shape",
    ),
    Bad(
        "csv-ragged-row",
        P,
        b"sepal_length,sepal_width,petal_length,petal_width\n1,2,3\n",
        400,
        "malformed_body",
        headers=CSV,
    ),
    Bad(
        "csv-header-only",
        P,
        b"sepal_length,sepal_width,petal_length,petal_width\n",
        422,
        "empty_batch",
        headers=CSV,
    ),
    Bad(
        "csv-bad-number",
        P,
        b"sepal_length,sepal_width,petal_length,petal_width\nx,2,3,4\n",
        422,
        "invalid_value",
        headers=CSV,
    ),
    Bad("get-no-params", P, None, 400, "invalid_request", method="GET"),
    Bad(
        "get-bad-value",
        P + "?sepal_length=abc&sepal_width=1&petal_length=1&petal_width=1",
        None,
        422,
        "invalid_value",
        method="GET",
    ),
    Bad("get-missing-column", P + "?sepal_length=1", None, 422, "missing_column", method="GET"),
    Bad("oversize-body", P, rows(*[GOOD_ROW] * 200), 413, "payload_too_large"),
    Bad("unknown-route", "/v1/nothing", None, 404, "not_found", method="GET"),
    Bad("wrong-method", P, None, 405, "method_not_allowed", method="DELETE"),
    # --- MLflow scoring protocol ---------------------------------------------------------
    Bad("mlflow-no-layout", "/invocations", body({"params": {}}), 400, "BAD_REQUEST"),
    Bad(
        "mlflow-two-layouts",
        "/invocations",
        body({"instances": [GOOD_ROW], "dataframe_records": [GOOD_ROW]}),
        400,
        "BAD_REQUEST",
    ),
    Bad("mlflow-empty-body", "/invocations", b"", 400, "BAD_REQUEST"),
    Bad(
        "mlflow-text-plain",
        "/invocations",
        b"x",
        415,
        "BAD_REQUEST",
        headers={"content-type": "text/plain"},
    ),
    Bad(
        "mlflow-split-without-data",
        "/invocations",
        body({"dataframe_split": {"columns": []}}),
        400,
        "BAD_REQUEST",
    ),
    Bad(
        "mlflow-missing-column",
        "/invocations",
        body({"dataframe_records": [{"sepal_length": 1.0}]}),
        400,
        "BAD_REQUEST",
    ),
    Bad(
        "mlflow-unknown-model",
        "/mlflow/nope/invocations",
        body({"instances": [GOOD_ROW]}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    # --- Open Inference Protocol V2 ------------------------------------------------------
    Bad("v2-malformed", "/v2/models/iris/infer", b"{", 400, ""),
    Bad(
        "v2-unknown-input",
        "/v2/models/iris/infer",
        body({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}),
        400,
        "",
    ),
    Bad(
        "v2-count-mismatch",
        "/v2/models/iris/infer",
        body({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2]}]}),
        400,
        "",
    ),
    Bad(
        "v2-bad-datatype",
        "/v2/models/iris/infer",
        body(
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]}
        ),
        400,
        "",
    ),
    Bad(
        "v2-bytes-for-float",
        "/v2/models/iris/infer",
        body(
            {"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
        ),
        400,
        "",
    ),
    Bad("v2-unknown-model", "/v2/models/nope/infer", body({"inputs": []}), 404, ""),
    Bad(
        "v2-bad-header-length",
        "/v2/models/iris/infer",
        b"{}",
        400,
        "",
        headers={**JSON, "inference-header-content-length": "99"},
    ),
]


@pytest.fixture(scope="module")
def small_limit_url(serve: ServeFactory, iris_bundle: Path) -> str:
    return serve(iris_bundle, env={"FERRY_MAX_BODY_BYTES": str(SMALL_BODY_LIMIT)})


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request(case: Bad, small_limit_url: str, iris_model: LogisticRegression) -> None:
    response = httpx.request(
        case.method, small_limit_url + case.path, content=case.body, headers=case.headers
    )
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    if case.path.startswith("/v2"):
        assert isinstance(answer["error"], str)
        assert answer["error"]
    elif case.path.startswith(("/invocations", "/mlflow")):
        assert answer["error_code"] == case.code
        assert answer["message"]
    else:
        assert answer["error"]["code"] == case.code
        assert answer["error"]["message"]
        assert isinstance(answer["error"]["details"], dict)
    # the server still answers a good request afterwards
    good = httpx.post(f"{small_limit_url}{P}", json={"instances": [GOOD_ROW]})
    assert good.status_code == 200
    assert good.json()["predictions"] == iris_model.predict(pd.DataFrame([GOOD_ROW])).tolist()


def test_error_names_the_column(small_limit_url: str) -> None:
    response = httpx.post(
        small_limit_url + P,
        json={"instances": [GOOD_ROW, {**GOOD_ROW, "petal_width": "thin"}]},
    )
    error = response.json()["error"]
    assert error["details"]["column"] == "petal_width"
    assert error["details"]["row"] == 1
    assert error["details"]["expected"] == "float64"
    assert "petal_width" in error["message"]
