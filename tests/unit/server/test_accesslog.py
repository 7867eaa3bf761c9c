"""The access log: one line per sampled or failed request, named by the id the answer carries."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ferry.config.logging import configure_logging
from ferry.server.accesslog import AccessLogMiddleware


async def _found(request: Request) -> JSONResponse:
    return JSONResponse({"name": request.path_params["name"]})


async def _missing(request: Request) -> JSONResponse:
    return JSONResponse({"error": "no such model"}, status_code=404)


APP = Starlette(
    routes=[
        Route("/models/{name}", _found),
        Route("/models/{name}/versions/{version}/missing", _missing),
    ]
)


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("INFO", "json")
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "ferry")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    configure_logging("INFO", "console")


def _get(sample: float, path: str) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=AccessLogMiddleware(APP, sample))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(main())


def test_error_lines_name_the_id_and_model_the_answer_carries(lines: io.StringIO) -> None:
    answer = _get(0.0, "/models/wine/versions/3/missing")
    assert answer.status_code == 404
    (line,) = (json.loads(text) for text in lines.getvalue().splitlines())
    assert line["request_id"] == answer.headers["x-request-id"]
    assert (line["model"], line["version"], line["status"]) == ("wine", "3", 404)
    assert line["path"] == "/models/wine/versions/3/missing"


def test_successes_are_sampled(lines: io.StringIO) -> None:
    unsampled = _get(0.0, "/models/iris")
    assert unsampled.status_code == 200
    assert lines.getvalue() == ""
    sampled = _get(1.0, "/models/iris")
    (line,) = (json.loads(text) for text in lines.getvalue().splitlines())
    assert line["request_id"] == sampled.headers["x-request-id"]
    assert (line["model"], line["version"], line["status"]) == ("iris", "-", 200)
