"""All three protocols against a real ``ferry serve`` process give the model's own answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import ServeFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def iris_url(serve: ServeFactory, iris_bundle: Path) -> str:
    return serve(iris_bundle)


@pytest.fixture(scope="module")
def rows(iris_data: tuple[pd.DataFrame, pd.Series]) -> pd.DataFrame:
    X, _ = iris_data
    return X.iloc[[0, 55, 120, 77, 149]]


def test_native_records_lists_and_columns_agree(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    expected = iris_model.predict(rows).tolist()
    url = f"{iris_url}/v1/models/iris/predict"
    bodies = [
        {"instances": rows.to_dict("records")},
        {"instances": rows.to_numpy().tolist()},
        {"inputs": rows.to_dict("list")},
    ]
    for body in bodies:
        response = httpx.post(url, json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["predictions"] == expected
        assert answer["model"] == "iris"
        assert answer["version"] == "1"
        assert response.headers["x-request-id"] == answer["request_id"]


def test_native_probabilities(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    response = httpx.post(
        f"{iris_url}/v1/models/iris/predict",
        json={"instances": rows.to_dict("records"), "outputs": ["label", "probabilities"]},
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    np.testing.assert_allclose(answer["probabilities"], iris_model.predict_proba(rows), rtol=1e-9)


def test_native_get_from_query_string(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    row = rows.iloc[2]
    response = httpx.get(f"{iris_url}/v1/models/iris/predict", params=row.to_dict())
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == iris_model.predict(rows.iloc[[2]]).tolist()


def test_native_csv_body(iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression) -> None:
    response = httpx.post(
        f"{iris_url}/v1/models/iris/predict",
        content=rows.to_csv(index=False),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == iris_model.predict(rows).tolist()


def test_mlflow_layouts_and_csv_give_identical_answers(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    expected = iris_model.predict(rows).tolist()
    split = rows.to_dict("split")
    layouts = [
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        {"dataframe_split": {**split, "index": list(range(len(rows)))}},
        {
            "dataframe_split": {
                "columns": split["columns"][::-1],
                "data": [r[::-1] for r in split["data"]],
            }
        },
        {"dataframe_records": rows.to_dict("records")},
        {"instances": rows.to_dict("records")},
        {"instances": rows.to_numpy().tolist()},
        {"inputs": rows.to_numpy().tolist()},
        {"inputs": rows.to_dict("list")},
        {"inputs": rows.to_dict("list"), "params": {"anything": 1}},
    ]
    for body in layouts:
        response = httpx.post(f"{iris_url}/invocations", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == {"predictions": expected}
    response = httpx.post(
        f"{iris_url}/invocations",
        content=rows.to_csv(index=False),
        headers={"content-type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}


def test_mlflow_health_routes(iris_url: str) -> None:
    assert httpx.get(f"{iris_url}/ping").status_code == 200
    assert httpx.get(f"{iris_url}/health").status_code == 200
    version = httpx.get(f"{iris_url}/version")
    assert version.status_code == 200
    assert version.text


def test_v2_metadata_and_json_infer(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    assert httpx.get(f"{iris_url}/v2").json()["name"] == "ferry"
    assert httpx.get(f"{iris_url}/v2/health/live").status_code == 200
    assert httpx.get(f"{iris_url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{iris_url}/v2/models/iris/ready").status_code == 200
    metadata = httpx.get(f"{iris_url}/v2/models/iris").json()
    assert [i["name"] for i in metadata["inputs"]] == list(rows.columns)
    # build the request from the metadata alone, one tensor per column
    inputs = [
        {
            "name": i["name"],
            "datatype": i["datatype"],
            "shape": [len(rows)],
            "data": rows[i["name"]].tolist(),
        }
        for i in metadata["inputs"]
    ]
    response = httpx.post(
        f"{iris_url}/v2/models/iris/versions/1/infer", json={"id": "req-7", "inputs": inputs}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "req-7"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["predictions"]["data"] == iris_model.predict(rows).tolist()
    assert outputs["predictions"]["datatype"] == "INT64"
    assert outputs["probabilities"]["shape"] == [len(rows), 3]
    np.testing.assert_allclose(
        np.reshape(outputs["probabilities"]["data"], (len(rows), 3)),
        iris_model.predict_proba(rows),
        rtol=1e-9,
    )


def test_v2_single_matrix_tensor(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    body = {
        "inputs": [
            {
                "name": "predict",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.to_numpy().ravel().tolist(),
            }
        ],
        "outputs": [{"name": "predictions"}],
    }
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["data"] == iris_model.predict(rows).tolist()


def test_tritonclient_binary_and_json(
    iris_url: str, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(iris_url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_model_ready("iris")
        metadata = client.get_model_metadata("iris")
        for binary in (True, False):
            inputs = []
            for spec in metadata["inputs"]:
                tensor = triton.InferInput(spec["name"], [len(rows)], spec["datatype"])
                tensor.set_data_from_numpy(
                    rows[spec["name"]].to_numpy(np.float64), binary_data=binary
                )
                inputs.append(tensor)
            # default call: no outputs named, so tritonclient asks for binary outputs
            result = client.infer("iris", inputs)
            np.testing.assert_array_equal(result.as_numpy("predictions"), iris_model.predict(rows))
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), iris_model.predict_proba(rows), rtol=1e-9
            )
            outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary)]
            result = client.infer("iris", inputs, outputs=outputs, request_id="abc")
            assert result.get_response()["id"] == "abc"
            assert result.as_numpy("predictions") is None
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), iris_model.predict_proba(rows), rtol=1e-9
            )
    finally:
        client.close()


def test_tritonclient_error_is_decoded(iris_url: str) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(iris_url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("bogus", [1], "FP64")
        tensor.set_data_from_numpy(np.array([1.0]))
        with pytest.raises(InferenceServerException, match="bogus"):
            client.infer("iris", [tensor])
    finally:
        client.close()


def test_health_metrics_and_docs(iris_url: str) -> None:
    assert httpx.get(f"{iris_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{iris_url}/readyz").json()
    assert ready == {"ready": True, "models": {"iris:1": "passed"}}
    httpx.post(f"{iris_url}/v1/models/iris/predict", json={"instances": [[5.0, 3.0, 1.5, 0.2]]})
    metrics = httpx.get(f"{iris_url}/metrics").text
    assert (
        'ferry_requests_total{model="iris",protocol="native",status="200",version="1"}' in metrics
    )
    assert "ferry_request_duration_seconds_bucket" in metrics
    spec = httpx.get(f"{iris_url}/openapi.json").json()
    body = spec["paths"]["/v1/models/iris/predict"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    row = schema["properties"]["instances"]["items"]["oneOf"][0]
    assert set(row["properties"]) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert row["properties"]["sepal_length"] == {"type": "number"}
    assert httpx.get(f"{iris_url}/docs").status_code == 200
