"""/openapi.json documents every control-plane route, its bodies, answers and error shape."""

from __future__ import annotations

from typing import Any

from tests.unit.server.control.harness import API, Control

ROUTES = {
    "/models": {"get", "post"},
    "/models/{name}": {"get", "patch", "delete"},
    "/models/{name}/versions": {"get", "post"},
    "/models/{name}/versions/{version}": {"get", "patch"},
    "/models/{name}/versions/{version}/metrics": {"post"},
    "/models/{name}/versions/{version}/lineage": {"get"},
    "/models/{name}/versions/{version}/download": {"get"},
    "/models/{name}/aliases": {"get"},
    "/models/{name}/aliases/{alias}": {"get", "put", "delete"},
    "/models/{name}/aliases/{alias}/history": {"get"},
    "/audit": {"get"},
    "/models/{name}/versions/{version}/builds": {"get", "post"},
    "/models/{name}/versions/{version}/builds/{build_id}": {"get"},
    "/keys": {"get", "post"},
    "/keys/{key}": {"delete"},
    "/usage": {"get"},
    "/models/{name}/versions/{version}/profile": {"get"},
    "/models/{name}/versions/{version}/drift": {"post"},
    "/models/{name}/drift": {"get"},
    "/drift/{report_id}": {"get"},
    "/drift/{report_id}/report.html": {"get"},
    "/telemetry": {"post"},
    "/telemetry/sites": {"get"},
}


def schema_name(content: dict[str, Any]) -> str:
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_every_route_is_documented(control: Control) -> None:
    spec = control.http.get("/openapi.json").json()
    documented = {path.removeprefix(API): set(methods) for path, methods in spec["paths"].items()}
    assert documented == ROUTES
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path} documents FastAPI's 422"
            assert schema_name(responses["4XX"]["content"]) == "ErrorAnswer"


def test_answers_and_bodies_are_typed(control: Control) -> None:
    spec = control.http.get("/openapi.json").json()
    paths = spec["paths"]
    assert schema_name(paths[f"{API}/models"]["get"]["responses"]["200"]["content"]) == (
        "ModelPage"
    )
    version = paths[f"{API}/models/{{name}}/versions/{{version}}"]["get"]["responses"]["200"]
    assert schema_name(version["content"]) == "VersionOut"
    body = paths[f"{API}/models/{{name}}/aliases/{{alias}}"]["put"]["requestBody"]
    assert schema_name(body["content"]) == "AliasIn"
    lineage = paths[f"{API}/models/{{name}}/versions/{{version}}/lineage"]["get"]
    assert schema_name(lineage["responses"]["200"]["content"]) == "LineageGraphOut"
    schemas = spec["components"]["schemas"]
    assert set(schemas["VersionOut"]["required"]) >= {"model", "version", "sha256", "signature"}


def test_upload_documents_its_multipart_parts(control: Control) -> None:
    spec = control.http.get("/openapi.json").json()
    upload = spec["paths"][f"{API}/models/{{name}}/versions"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(form) == {
        "bundle",
        "model",
        "requirements",
        "code",
        "example",
        "metadata",
        "reference",
        "trust",
    }
    assert form["model"]["format"] == "binary"
    assert schema_name(upload["responses"]["201"]["content"]) == "UploadOut"
    assert schema_name(upload["responses"]["200"]["content"]) == "UploadOut"
    download = spec["paths"][f"{API}/models/{{name}}/versions/{{version}}/download"]["get"]
    assert "application/gzip" in download["responses"]["200"]["content"]
