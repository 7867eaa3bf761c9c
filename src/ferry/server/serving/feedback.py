"""Monitoring routes: feedback (the truth for logged requests), live performance, and the
prediction log over HTTP (what ``ferry logs`` and the UI read).

- ``POST /v1/models/{name}/feedback``: ``{"request_id": ..., "truth": ...}`` or
  ``{"items": [{"request_id": ..., "truth": ...}, ...]}``; one true value per predicted row
  (a bare value for a 1-row request). All items are stored, or none.
- ``GET /v1/models/{name}/performance?window=1h[&version=N][&task=classification]``
- ``GET /api/v1/models/{name}/predictions?since=1h[&until=...][&version=N][&limit&offset]``
- ``GET /api/v1/predictions/{request_id}``
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ferry.errors import InvalidRequest, PredictionNotFound
from ferry.monitoring.performance import TASKS, evaluate
from ferry.monitoring.predlog import Feedback, LoggedPrediction, parse_duration, parse_time
from ferry.security.identity import principal_id
from ferry.security.scopes import Action
from ferry.server.monitoring import Monitoring, monitoring_of
from ferry.server.routes import Protocol, RouteTable, need
from ferry.server.serving.inference import json_response, parse_json, read_body

if TYPE_CHECKING:
    from ferry.monitoring.predlog.store import PredictionStore

MAX_FEEDBACK_ITEMS = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
# predictions are written asynchronously (every ~1 s, by whichever worker answered): an id
# not found yet is looked for again for this long before the answer is 404
FIND_WAIT_SECONDS = 3.0
_FEEDBACK_KEYS = frozenset({"request_id", "truth", "items"})


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    request_id: str
    truth: Any
    field: str  # where it was in the body, for error messages


def parse_feedback(payload: Any) -> list[FeedbackItem]:
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "the body must be a JSON object: {'request_id', 'truth'} or {'items': [...]}",
            field="body",
        )
    unknown = sorted(payload.keys() - _FEEDBACK_KEYS)
    if unknown:
        raise InvalidRequest(
            f"unknown field {unknown[0]!r}; expected 'request_id' and 'truth', or 'items'",
            field=unknown[0],
        )
    if "items" in payload:
        if "request_id" in payload or "truth" in payload:
            raise InvalidRequest(
                "send either 'items' or one 'request_id' with its 'truth', not both",
                field="items",
            )
        items = payload["items"]
        if not isinstance(items, list) or not items:
            raise InvalidRequest("'items' must be a non-empty list", field="items")
        if len(items) > MAX_FEEDBACK_ITEMS:
            raise InvalidRequest(
                f"'items' has {len(items)} entries; send at most {MAX_FEEDBACK_ITEMS}",
                field="items",
            )
        parsed = [_item(item, f"items[{i}]") for i, item in enumerate(items)]
    else:
        parsed = [_item(payload, "")]
    seen: set[str] = set()
    for item in parsed:
        if item.request_id in seen:
            raise InvalidRequest(
                f"request id {item.request_id!r} appears twice",
                field=_at(item.field, "request_id"),
            )
        seen.add(item.request_id)
    return parsed


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _item(value: Any, prefix: str) -> FeedbackItem:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{prefix or 'body'} must be an object", field=prefix or "body")
    extra = sorted(value.keys() - {"request_id", "truth"})
    if prefix and extra:
        raise InvalidRequest(f"unknown field {extra[0]!r} in {prefix}", field=_at(prefix, extra[0]))
    request_id = value.get("request_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
        raise InvalidRequest(
            "request_id must be the non-empty string a prediction answered with",
            field=_at(prefix, "request_id"),
        )
    if "truth" not in value:
        raise InvalidRequest(
            f"truth is missing for request id {request_id!r}", field=_at(prefix, "truth")
        )
    truth = value["truth"]
    for cell in truth if isinstance(truth, list) else [truth]:
        if not _is_value(cell):
            raise InvalidRequest(
                f"truth for request id {request_id!r} must be a value (number, string, bool) "
                f"or a list of them, one per predicted row; got {cell!r}",
                field=_at(prefix, "truth"),
            )
    return FeedbackItem(request_id, truth, prefix)


def _is_value(cell: Any) -> bool:
    if isinstance(cell, float):
        return math.isfinite(cell)
    return isinstance(cell, str | int | bool)


def _find(
    monitoring: Monitoring, store: PredictionStore, ids: list[str], principal: str | None
) -> dict[str, LoggedPrediction]:
    found = store.find_many(ids, principal)
    if len(found) == len(ids) or monitoring.log is None:
        return found
    monitoring.log.flush()
    deadline = time.monotonic() + FIND_WAIT_SECONDS
    while True:
        missing = [i for i in ids if i not in found]
        found.update(store.find_many(missing, principal))
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def record_feedback(
    monitoring: Monitoring, name: str, items: list[FeedbackItem], principal: str | None = None
) -> dict[str, Any]:
    """Store the truths; an item may name a request by the server's id or by the caller's own
    X-Request-ID (``principal``'s request when several sent it), and is stored under the
    server's id, which no other caller can reuse."""
    store = monitoring.logged_store()
    found = _find(monitoring, store, [item.request_id for item in items], principal)
    missing = [item for item in items if item.request_id not in found]
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise PredictionNotFound(
            f"no logged prediction has request id {first.request_id!r}{more}",
            request_id=first.request_id,
            field=_at(first.field, "request_id"),
            missing=[m.request_id for m in missing[:100]],
        )
    now = datetime.now(UTC)
    feedback: list[Feedback] = []
    named: set[str] = set()
    for item in items:
        record = found[item.request_id]
        where = _at(item.field, "request_id")
        if record.request_id in named:
            raise InvalidRequest(
                f"request id {item.request_id!r} names a request given earlier in the body",
                field=where,
            )
        named.add(record.request_id)
        if record.model != name:
            raise PredictionNotFound(
                f"request id {item.request_id!r} was answered by model {record.model!r}, "
                f"not {name!r}",
                request_id=item.request_id,
                field=where,
            )
        if record.status != 200:
            raise InvalidRequest(
                f"request id {item.request_id!r} failed ({record.status} "
                f"{record.error_code}); there is no prediction to compare with",
                field=where,
            )
        truth = item.truth if isinstance(item.truth, list) else [item.truth]
        if len(truth) != record.rows:
            raise InvalidRequest(
                f"request id {item.request_id!r} predicted {record.rows} rows; send "
                f"{record.rows} true values, got {len(truth)}",
                field=_at(item.field, "truth"),
                expected=record.rows,
            )
        feedback.append(Feedback(record.request_id, record.model, record.version, truth, now))
    store.add_feedback(feedback)
    rows = 0
    for entry in feedback:
        monitoring.metrics.feedback.labels(entry.model, entry.version).inc(len(entry.truth))
        rows += len(entry.truth)
    monitoring.monitor.check(store, name)
    return {"model": name, "accepted": len(feedback), "rows": rows}


def _model_name(request: Request) -> str:
    name: str = request.path_params["name"]
    return name.partition("@")[0]


async def post_feedback(request: Request) -> Response:
    monitoring = monitoring_of(request)
    monitoring.logged_store()  # a 409 before reading the body when logging is off
    items = parse_feedback(parse_json(await read_body(request, MAX_BODY_BYTES)))
    name = _model_name(request)
    principal = principal_id(request.scope)
    answer = await anyio.to_thread.run_sync(record_feedback, monitoring, name, items, principal)
    return json_response(answer)


async def get_performance(request: Request) -> Response:
    monitoring = monitoring_of(request)
    params = request.query_params
    window_text = params.get("window", "") or None
    window = parse_duration(window_text, "window") if window_text else monitoring.monitor.window
    task = params.get("task") or None
    if task is not None and task not in TASKS:
        raise InvalidRequest(f"task {task!r} is unknown; use {list(TASKS)}", field="task")
    version = params.get("version") or None
    name = _model_name(request)
    store = monitoring.logged_store()

    def run() -> list[Any]:
        results = evaluate(store, name, window, version=version, task=task)
        for performance in results:
            monitoring.export(performance)
        return [p.to_json() for p in results]

    versions = await anyio.to_thread.run_sync(run)
    body = {"model": name, "window_seconds": window.total_seconds(), "versions": versions}
    return json_response(body)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}", field=name)
    return int(text)


async def list_predictions(request: Request) -> Response:
    monitoring = monitoring_of(request)
    params = request.query_params
    since = parse_time(params["since"], "since") if params.get("since") else None
    until = parse_time(params["until"], "until") if params.get("until") else None
    version = params.get("version") or None
    limit = _int_param(request, "limit", 100, 1, 10_000)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    name = _model_name(request)
    store = monitoring.logged_store()

    def run() -> list[dict[str, Any]]:
        records = store.records(name, version, since, until, limit=limit, offset=offset)
        return [r.to_json() for r in records]

    items = await anyio.to_thread.run_sync(run)
    return json_response({"items": items, "limit": limit, "offset": offset})


async def get_prediction(request: Request) -> Response:
    monitoring = monitoring_of(request)
    store = monitoring.logged_store()
    request_id: str = request.path_params["request_id"]
    principal = principal_id(request.scope)
    record = await anyio.to_thread.run_sync(store.get, request_id, principal)
    return json_response(record.to_json())


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    """OpenAPI for a path parameter the endpoint reads from ``request`` itself (FastAPI only
    documents the parameters of its signature)."""
    parameter = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    return {"parameters": [{**parameter, "description": description}]}


MODEL_PARAMETER = _path_parameter("name", "The model's name (or name@alias).")


def feedback_routes() -> RouteTable:
    routes = RouteTable(Protocol.NATIVE, tags=["monitoring"])
    routes.add(
        "/v1/models/{name}/feedback",
        post_feedback,
        "POST",
        need(Action.PREDICT, Action.PUBLISH, on="name"),
        summary="Send the true values for logged predictions",
        openapi_extra=MODEL_PARAMETER,
    )
    routes.add(
        "/v1/models/{name}/performance",
        get_performance,
        "GET",
        need(Action.READ, Action.PREDICT, on="name"),
        summary="Live accuracy/F1 or MAE/RMSE per version, from feedback",
        openapi_extra=MODEL_PARAMETER,
    )
    routes.add(
        "/api/v1/models/{name}/predictions",
        list_predictions,
        "GET",
        need(Action.READ, on="name"),
        protocol=Protocol.CONTROL,
        summary="Logged predictions of a model, newest first",
        openapi_extra=MODEL_PARAMETER,
    )
    routes.add(
        "/api/v1/predictions/{request_id}",
        get_prediction,
        "GET",
        need(Action.READ),
        protocol=Protocol.CONTROL,
        summary="One logged prediction by request id",
        openapi_extra=_path_parameter("request_id", "The request id a prediction answered."),
    )
    return routes
