"""Request and response bodies of the two foreign protocols, as OpenAPI 3.1 (JSON Schema
2020-12) components: MLflow's scoring protocol and the Open Inference Protocol V2, as their
clients send them (``/work/shared/PROTOCOLS.md``)."""

from __future__ import annotations

from typing import Any

from ferry.server.routes import Protocol

JsonSchema = dict[str, Any]

V2_DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_PARAMETERS: JsonSchema = {"type": "object", "description": "Free-form parameters."}
_TENSOR_DATA: JsonSchema = {
    "description": "Row-major tensor contents, flat or nested to the shape.",
    "type": ["array", "number", "string", "boolean"],
}


def _ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _tensor(*, data_required: bool) -> JsonSchema:
    schema: JsonSchema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
            "datatype": {"type": "string", "enum": V2_DATATYPES},
            "parameters": _PARAMETERS,
            "data": _TENSOR_DATA,
        },
        "required": ["name", "shape", "datatype"] + (["data"] if data_required else []),
    }
    return schema


_TENSOR_METADATA: JsonSchema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": V2_DATATYPES},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
    },
    "required": ["name", "datatype", "shape"],
}

V2_SCHEMAS: dict[str, JsonSchema] = {
    "V2InferenceRequest": {
        "type": "object",
        "description": "Open Inference Protocol V2 inference request. With the binary tensor "
        "extension (header `Inference-Header-Content-Length`) an input carries "
        "`parameters.binary_data_size` instead of `data`.",
        "properties": {
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "minItems": 1, "items": _ref("V2RequestInput")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
                    "required": ["name"],
                },
            },
        },
        "required": ["inputs"],
    },
    "V2RequestInput": _tensor(data_required=False),
    "V2ResponseOutput": _tensor(data_required=False),
    "V2InferenceResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {"type": "array", "items": _ref("V2ResponseOutput")},
        },
        "required": ["model_name", "outputs"],
    },
    "V2ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_METADATA},
            "outputs": {"type": "array", "items": _TENSOR_METADATA},
        },
        "required": ["name", "platform", "inputs", "outputs"],
    },
    "V2ServerMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "version", "extensions"],
    },
    "V2Error": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
}

_ROW: JsonSchema = {"type": ["object", "array"]}


def _only(key: str, schema: JsonSchema) -> JsonSchema:
    """An object holding ``key`` (and maybe ``params``) and no other input key."""
    return {
        "type": "object",
        "properties": {key: schema, "params": _PARAMETERS},
        "required": [key],
        "additionalProperties": False,
    }


def mlflow_request_schema(row: JsonSchema | None = None) -> JsonSchema:
    """MLflow's ``/invocations`` body; ``row`` types one record (a model's columns)."""
    record = row or {"type": "object"}
    return {
        "description": "Exactly one of `dataframe_split`, `dataframe_records`, `instances`, "
        "`inputs`, plus optional `params`.",
        "oneOf": [
            _only(
                "dataframe_split",
                {
                    "type": "object",
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array"}},
                        "index": {"type": "array"},
                    },
                    "required": ["data"],
                },
            ),
            _only("dataframe_records", {"type": "array", "items": record}),
            _only("instances", {"type": "array", "items": _ROW}),
            _only("inputs", {"type": ["array", "object"]}),
        ],
    }


MLFLOW_SCHEMAS: dict[str, JsonSchema] = {
    "MLflowInvocationRequest": mlflow_request_schema(),
    "MLflowPredictions": {
        "type": "object",
        "properties": {"predictions": {"type": "array"}},
        "required": ["predictions"],
    },
    "MLflowError": {
        "type": "object",
        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
        "required": ["error_code", "message"],
    },
}


def json_body(schema: JsonSchema, *, csv: bool = False) -> JsonSchema:
    content: JsonSchema = {"application/json": {"schema": schema}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"required": True, "content": content}


def answer(description: str, schema: JsonSchema) -> JsonSchema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def mlflow_operation(request: JsonSchema) -> JsonSchema:
    """Body and answers of an ``invocations`` operation."""
    return {
        "requestBody": json_body(request, csv=True),
        "responses": {
            "200": answer("Predictions", _ref("MLflowPredictions")),
            "400": answer("Malformed request", _ref("MLflowError")),
        },
    }


def v2_infer_operation(request: JsonSchema) -> JsonSchema:
    return {
        "requestBody": json_body(request),
        "responses": {
            "200": answer("Inference response", _ref("V2InferenceResponse")),
            "400": answer("Malformed request", _ref("V2Error")),
        },
    }


def ref(name: str) -> JsonSchema:
    return _ref(name)


_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


_ERROR_SHAPES = {Protocol.V2: "V2Error", Protocol.MLFLOW: "MLflowError"}


def declare_errors(protocol: Protocol, operation: JsonSchema) -> None:
    """Every operation's 4xx and 5xx, in its protocol's error shape (server/errors.py).

    FastAPI's own 422 (its ``HTTPValidationError`` body) is never sent: the app answers a
    request that fails validation with 400 and the protocol's shape, so it goes."""
    shape = _ERROR_SHAPES.get(protocol, "FerryError")
    responses = operation.setdefault("responses", {})
    declared = responses.get("422", {}).get("content", {}).get("application/json", {})
    if declared.get("schema", {}).get("$ref") == _VALIDATION_ERROR:
        del responses["422"]
    responses.setdefault("4XX", answer("The caller's mistake; the message names it", _ref(shape)))
    responses.setdefault(
        "5XX", answer("A server fault: a fixed message with the request id", _ref(shape))
    )
