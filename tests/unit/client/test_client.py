"""ferry.client.Client against a real app (create_app + Starlette's TestClient), no network."""

from __future__ import annotations

import inspect
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferry.errors
from ferry.client import Client, ConnectionFailed
from ferry.client.client import error_from_response
from ferry.errors import (
    EmptyBatch,
    FerryError,
    InvalidValue,
    MalformedBody,
    ModelNotFound,
    UnknownColumn,
    UnknownOutput,
    error_class,
)
from ferry.model import load
from ferry.server.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x nudges TestClient users towards httpx2; httpx is what Ferry's client uses
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

Data = tuple[pd.DataFrame, pd.Series]


@pytest.fixture(scope="module")
def http(iris_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(None, [load(iris_bundle)]), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(http: TestClient) -> Client:
    return Client(http=http)


@pytest.fixture
def rows(iris_data: Data) -> pd.DataFrame:
    X, _ = iris_data
    return X.iloc[[0, 60, 110, 149]]


def test_every_error_code_maps_back_to_its_class() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(ferry.errors, inspect.isclass)
        if issubclass(cls, FerryError) and "code" in cls.__dict__
    ]
    assert len(classes) > 10
    for cls in classes:
        assert error_class(cls.code) is cls


def test_unknown_code_is_a_ferry_error_keeping_the_servers_code() -> None:
    request = httpx.Request("POST", "http://ferry.test/v1/models/x/predict")
    details = {"a": 1, "message": "a detail named like the constructor's argument"}
    body = {"error": {"code": "teapot", "message": "short and stout", "details": details}}
    exc = error_from_response(httpx.Response(418, json=body, request=request))
    assert type(exc) is FerryError
    assert (exc.code, exc.message, exc.details) == ("teapot", "short and stout", details)


def test_plain_text_error_names_the_status() -> None:
    request = httpx.Request("GET", "http://ferry.test/v1/models")
    exc = error_from_response(httpx.Response(502, text="Bad Gateway", request=request))
    assert type(exc) is FerryError
    assert "502" in exc.message
    assert "Bad Gateway" in exc.message


def test_predict_rows_columns_and_frame_match_the_model(
    client: Client, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    expected = iris_model.predict(rows).tolist()
    for data in (
        rows.to_dict("records"),
        rows.to_numpy().tolist(),
        rows.to_dict("list"),
        rows,
    ):
        answer = client.predict("iris", data)
        assert answer["predictions"] == expected
        assert answer["model"] == "iris"
        assert answer["version"] == "1"
        assert "probabilities" not in answer


def test_predict_outputs(
    client: Client, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    answer = client.predict("iris", rows, outputs=["label", "probabilities"])
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    np.testing.assert_allclose(answer["probabilities"], iris_model.predict_proba(rows))


def test_frame_with_missing_values_is_sent_as_null(client: Client, rows: pd.DataFrame) -> None:
    frame = rows.copy()
    frame.iloc[1, 2] = np.nan  # iris columns are not nullable: the server names the cell
    with pytest.raises(InvalidValue) as caught:
        client.predict("iris", frame)
    assert caught.value.details["column"] == "petal_length"
    assert caught.value.details["row"] == 1


@pytest.mark.parametrize(
    ("name", "data", "outputs", "error", "detail"),
    [
        ("iris", [{"sepal_length": 1.0, "colour": "red"}], None, UnknownColumn, "column"),
        ("iris", [], None, EmptyBatch, None),
        ("nope", [[1.0, 2.0, 3.0, 4.0]], None, ModelNotFound, "model"),
        ("iris", [[1.0, 2.0, 3.0, 4.0]], ["embedding"], UnknownOutput, "output"),
    ],
)
def test_error_answers_are_rebuilt_as_their_ferry_error(
    client: Client,
    name: str,
    data: list[object],
    outputs: list[str] | None,
    error: type[FerryError],
    detail: str | None,
) -> None:
    with pytest.raises(error) as caught:
        client.predict(name, data, outputs=outputs)  # type: ignore[arg-type]
    assert type(caught.value) is error
    assert caught.value.message
    if detail is not None:
        assert detail in caught.value.details


def test_protocol_error_shapes_are_rebuilt(http: TestClient) -> None:
    mlflow = http.post(
        "/invocations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert mlflow.status_code == 400
    assert type(error_from_response(mlflow)) is MalformedBody
    v2 = http.post("/v2/models/iris/infer", content=b"{not json")
    assert v2.status_code == 400
    exc = error_from_response(v2)
    assert isinstance(exc, FerryError)
    assert exc.message == v2.json()["error"]


def test_model_and_models(client: Client, iris_model: LogisticRegression) -> None:
    info = client.model("iris")
    assert info.name == "iris"
    assert info.flavor == "sklearn"
    assert info.signature.names == [str(n) for n in iris_model.feature_names_in_]
    assert [m.name for m in client.models()] == ["iris"]
    with pytest.raises(ModelNotFound):
        client.model("nope")


def test_ready(client: Client) -> None:
    assert client.ready() is True


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_server() -> None:
    with Client(f"http://127.0.0.1:{closed_port()}", timeout=2) as client:
        assert client.ready() is False
        with pytest.raises(ConnectionFailed) as caught:
            client.predict("iris", [[1.0, 2.0, 3.0, 4.0]])
    assert client.base_url in caught.value.message


def test_base_url_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_URL", "http://models.internal:9000/")
    with Client() as client:
        assert client.base_url == "http://models.internal:9000"
    with Client("http://127.0.0.1:8123") as client:
        assert client.base_url == "http://127.0.0.1:8123"
