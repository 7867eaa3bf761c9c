"""OpenAPI (JSON Schema) fragments derived from a model's signature, for /docs and /openapi.json."""

from __future__ import annotations

from typing import Any

from ferry.model.loaded import LoadedModel
from ferry.model.signature import JSON_TYPES, ColumnSpec, OutputSpec

JsonSchema = dict[str, Any]


def column_schema(column: ColumnSpec) -> JsonSchema:
    scalar: JsonSchema = {"type": JSON_TYPES[column.dtype]}
    if column.nullable or not column.required:
        scalar = {"type": [JSON_TYPES[column.dtype], "null"]}
    if column.categories:
        scalar["examples"] = column.categories[:10]
    schema = scalar
    for size in reversed(column.shape):
        schema = {"type": "array", "items": schema}
        if size > 0:
            schema.update(minItems=size, maxItems=size)
    return schema


def output_schema(output: OutputSpec) -> JsonSchema:
    schema: JsonSchema = {"type": JSON_TYPES[output.dtype]}
    for _ in output.shape:
        schema = {"type": "array", "items": schema}
    return {"type": "array", "items": schema}


def row_object_schema(model: LoadedModel) -> JsonSchema:
    columns = model.signature.inputs
    return {
        "type": "object",
        "properties": {c.name: column_schema(c) for c in columns},
        "required": [c.name for c in columns if c.required],
        "additionalProperties": False,
    }


def native_request_schema(model: LoadedModel) -> JsonSchema:
    columns = model.signature.inputs
    row_list: JsonSchema = {
        "type": "array",
        "prefixItems": [column_schema(c) for c in columns],
        "minItems": len(columns),
        "maxItems": len(columns),
    }
    schema: JsonSchema = {
        "type": "object",
        "description": "Send rows as `instances` (objects or lists in column order) "
        "or columns as `inputs`; choose outputs with `outputs`.",
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [row_object_schema(model), row_list]},
            },
            "inputs": {
                "type": "object",
                "properties": {
                    c.name: {"type": "array", "items": column_schema(c)} for c in columns
                },
                "additionalProperties": False,
            },
            "outputs": {
                "type": "array",
                "items": {"type": "string", "enum": model.output_names},
            },
        },
        "additionalProperties": False,
    }
    example = example_records(model)
    if example:
        schema["example"] = {"instances": example}
    return schema


def native_response_schema(model: LoadedModel) -> JsonSchema:
    properties: JsonSchema = {o.name: output_schema(o) for o in model.signature.outputs}
    properties.update(
        model={"type": "string"}, version={"type": "string"}, request_id={"type": "string"}
    )
    return {"type": "object", "properties": properties, "required": ["predictions", "model"]}


def example_records(model: LoadedModel, limit: int = 3) -> list[dict[str, Any]]:
    if model.example is None:
        return []
    n = min(limit, model.example.n_rows)
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, array in model.example.columns.items():
        for row, value in enumerate(array[:n].tolist()):
            records[row][name] = None if isinstance(value, float) and value != value else value
    return records
