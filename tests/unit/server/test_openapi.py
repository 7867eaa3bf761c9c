"""/openapi.json of a one-model app and its per-model document validate as OpenAPI 3.1; the
V2 and MLflow bodies are typed; keys are documented; /docs loads nothing from the internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from ferry.config.settings import get_settings
from ferry.model.loaded import LoadedModel
from ferry.server.app import create_app
from tests.integration.inprocess import running


@pytest.fixture
def client(iris_bundle: Path) -> Iterator[httpx.Client]:
    import ferry.model

    model: LoadedModel = ferry.model.load(iris_bundle)
    with running(create_app(get_settings(), [model])) as url, httpx.Client(base_url=url) as c:
        yield c


def errors(document: dict[str, Any]) -> list[str]:
    return [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(document).iter_errors()]


def test_document_is_valid_openapi_31(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert errors(document) == []
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V2InferenceRequest"
    }
    mlflow = document["paths"]["/invocations"]["post"]
    assert "text/csv" in mlflow["requestBody"]["content"]
    assert "security" not in infer  # auth off


def test_per_model_document(client: httpx.Client) -> None:
    answer = client.get("/v1/models/iris/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert errors(document) == []
    assert "/v1/models/iris/predict" in document["paths"]
    assert client.get("/v1/models/nope/openapi.json").status_code == 404


def test_docs_assets_are_local(client: httpx.Client) -> None:
    page = client.get("/docs").text
    assert "cdn" not in page.lower()
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url
    assert "validatorUrl" in page
    redoc = client.get("/redoc").text
    assert "fonts.googleapis" not in redoc
    assert "cdn" not in redoc.lower()


def test_every_operation_declares_its_errors_in_its_protocols_shape(client: httpx.Client) -> None:
    """What schemathesis' status and content-type checks found undeclared: 4xx and 5xx of
    every route, text answers declared as JSON, and FastAPI's 422 body the app never sends."""
    for document in (
        client.get("/openapi.json").json(),
        client.get("/v1/models/iris/openapi.json").json(),
    ):
        for path, operations in document["paths"].items():
            shape = (
                "V2Error"
                if path.startswith("/v2")
                else "MLflowError"
                if path in ("/invocations", "/ping", "/health", "/version")
                or path.startswith("/mlflow/")
                else "FerryError"
            )
            for method, operation in operations.items():
                responses = operation["responses"]
                for status in ("4XX", "5XX"):
                    schema = responses[status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path)
                assert "HTTPValidationError" not in str(responses), (method, path)
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/ping", "/health", "/version", "/metrics"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/plain"], path
