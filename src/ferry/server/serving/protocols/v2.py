"""Open Inference Protocol V2 (KServe / Triton / MLServer clients), with binary tensor data."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ferry import __version__
from ferry.errors import InvalidRequest
from ferry.model.arrays import batch_from_arrays, batch_from_matrix
from ferry.model.loaded import OUTPUT_ALIASES, LoadedModel
from ferry.model.signature import Batch
from ferry.security.scopes import Action
from ferry.server.openapi_bodies import answer, ref, v2_infer_operation
from ferry.server.routes import PUBLIC, Protocol, RouteTable, need
from ferry.server.serving.context import ModelRef, ServingContext, serving_context
from ferry.server.serving.inference import json_response
from ferry.server.serving.pipeline import Answer, Decoded, run
from ferry.server.serving.protocols.v2_codec import (
    InferRequest,
    encode_infer_response,
    parse_infer_request,
)

HEADER_LENGTH = "inference-header-content-length"
# model_repository (index/load/unload) is not implemented, so not advertised
EXTENSIONS = ["binary_tensor_data"]
V2_DATATYPES = {
    "bool": "BOOL",
    "int32": "INT32",
    "int64": "INT64",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}


def batch_from_request(request: InferRequest, model: LoadedModel) -> Batch:
    """Named tensors -> a batch: one tensor per column, or one 2-D tensor of all columns.

    The tensors' arrays are already of their declared datatypes (``v2_codec``); validation
    checks them against the signature and converts only where the column's dtype differs.
    Input names are unique (``parse_infer_request`` refuses a name given twice)."""
    signature = model.signature
    inputs = request.inputs
    if len(inputs) == 1 and inputs[0].name not in signature.names:
        only = inputs[0].data
        if signature.is_tabular and only.ndim == 2 and only.shape[1] == len(signature.inputs):
            # MLServer-style: one [rows, n_features] tensor for a tabular model
            return batch_from_matrix(only, signature)
        if len(signature.inputs) == 1:
            return batch_from_arrays({signature.inputs[0].name: only}, signature)
    return batch_from_arrays({tensor.name: tensor.data for tensor in inputs}, signature)


class _V2Codec:
    """Open Inference Protocol V2 tensors (JSON or Triton's binary extension) both ways."""

    protocol = Protocol.V2
    reads_body = True

    def decode(self, request: Request, body: bytes, model: LoadedModel) -> Decoded:
        header = request.headers.get(HEADER_LENGTH)
        if header is not None and not header.strip().isdigit():
            raise InvalidRequest(f"{HEADER_LENGTH} must be a whole number, got {header!r}")
        parsed = parse_infer_request(body, int(header) if header is not None else None)
        requested = [o.name for o in parsed.outputs] if parsed.outputs else None
        return Decoded(batch_from_request(parsed, model), requested, parsed)

    def default_outputs(self, model: LoadedModel) -> list[str]:
        return _default_outputs(model)

    def encode(self, answer: Answer) -> Response:
        parsed = answer.decoded.state
        assert isinstance(parsed, InferRequest)
        binary = _binary_flags(parsed, answer.outputs)
        model, result = answer.model, answer.result
        content, header_length = encode_infer_response(
            model_name=model.name,
            model_version=model.version,
            request_id=parsed.id,
            outputs=[(name, result[name], binary[name]) for name in answer.outputs],
        )
        headers = answer.headers
        if header_length is None:
            return Response(content, media_type="application/json", headers=headers)
        headers["Inference-Header-Content-Length"] = str(header_length)
        return Response(content, media_type="application/octet-stream", headers=headers)


CODEC = _V2Codec()


async def infer(request: Request) -> Response:
    params = request.path_params
    return await run(request, CODEC, ModelRef(params["name"], params.get("version")))


def _default_outputs(model: LoadedModel) -> list[str]:
    """All outputs when the request names none, as Triton and MLServer answer."""
    return model.output_names


def _binary_flags(parsed: InferRequest, outputs: list[str]) -> dict[str, bool]:
    flags = dict.fromkeys(outputs, parsed.binary_output_default)
    for requested in parsed.outputs or []:
        if requested.binary is not None:
            flags[OUTPUT_ALIASES.get(requested.name, requested.name)] = requested.binary
    return flags


def tensor_metadata(model: LoadedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": f"ferry-{model.manifest.flavor}",
        "inputs": [
            {"name": c.name, "datatype": V2_DATATYPES[c.dtype], "shape": [-1, *c.shape]}
            for c in model.signature.inputs
        ],
        "outputs": [
            {"name": o.name, "datatype": V2_DATATYPES[o.dtype], "shape": [-1, *o.shape]}
            for o in model.signature.outputs
        ],
    }


async def server_metadata(request: Request) -> Response:
    return json_response({"name": "ferry", "version": __version__, "extensions": EXTENSIONS})


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def server_ready(request: Request) -> Response:
    ready = serving_context(request).models.ready
    return json_response({"ready": ready}, status=200 if ready else 503)


async def model_metadata(request: Request) -> Response:
    context: ServingContext = serving_context(request)
    model = await context.models.resolve(
        request.path_params["name"], request.path_params.get("version")
    )
    metadata = tensor_metadata(model)
    metadata["versions"] = context.models.versions(model.name)
    return json_response(metadata)


async def model_ready(request: Request) -> Response:
    context = serving_context(request)
    await context.models.resolve(request.path_params["name"], request.path_params.get("version"))
    return json_response({"name": request.path_params["name"], "ready": True})


def v2_routes() -> RouteTable:
    routes = RouteTable(Protocol.V2, tags=["v2"])
    routes.add(
        "/v2",
        server_metadata,
        "GET",
        PUBLIC,
        summary="V2 server metadata",
        openapi_extra={"responses": {"200": answer("Server metadata", ref("V2ServerMetadata"))}},
    )
    routes.add("/v2/health/live", live, "GET", PUBLIC, summary="V2 liveness")
    routes.add("/v2/health/ready", server_ready, "GET", PUBLIC, summary="V2 readiness")
    metadata = need(Action.READ, Action.PREDICT, on="name")
    predict = need(Action.PREDICT, on="name")
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes.add(
            base,
            model_metadata,
            "GET",
            metadata,
            summary="V2 model metadata",
            openapi_extra={"responses": {"200": answer("Model metadata", ref("V2ModelMetadata"))}},
        )
        routes.add(f"{base}/ready", model_ready, "GET", metadata, summary="V2 model ready")
        routes.add(
            f"{base}/infer",
            infer,
            "POST",
            predict,
            fast=True,
            summary="V2 inference",
            openapi_extra=v2_infer_operation(ref("V2InferenceRequest")),
        )
    return routes
