"""Logging: both formats, extra= fields, request context, secrets scrubbed, settings read."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ferry.config.logging import (
    bind_model,
    configure_from_settings,
    configure_logging,
    log_format,
    request_id_var,
)
from ferry.config.settings import Settings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    yield buffer
    configure_logging("INFO", "console")


def _capture(fmt: str, buffer: io.StringIO, level: str = "INFO") -> None:
    configure_logging(level, fmt)
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "ferry")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)


def test_json_lines_carry_extra_and_request_context(stream: io.StringIO) -> None:
    _capture("json", stream)
    token = request_id_var.set("req-1")
    bind_model("iris", "3")
    try:
        logging.getLogger("ferry.test").info("loaded %s", "iris", extra={"rows": 5})
    finally:
        request_id_var.reset(token)
        bind_model("-", "-")
    record = json.loads(stream.getvalue().strip())
    assert record["message"] == "loaded iris"
    assert record["rows"] == 5
    assert (record["request_id"], record["model"], record["version"]) == ("req-1", "iris", "3")
    assert record["level"] == "INFO"
    assert record["logger"] == "ferry.test"


def test_model_given_in_extra_wins_over_the_request_context(stream: io.StringIO) -> None:
    _capture("json", stream)
    bind_model("iris", "3")
    try:
        # a line about another model than the request's (a registry write, an eviction)
        logging.getLogger("ferry.test").info("registered", extra={"model": "wine", "version": 7})
        logging.getLogger("ferry.test").info("served")
    finally:
        bind_model("-", "-")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["model"], first["version"]) == ("wine", "7")
    assert (second["model"], second["version"]) == ("iris", "3")


def test_console_lines_carry_extra_fields(stream: io.StringIO) -> None:
    _capture("console", stream)
    logging.getLogger("ferry.test").warning("slow", extra={"duration_ms": 12})
    line = stream.getvalue().strip()
    assert "slow" in line
    assert "duration_ms=12" in line


def test_uvicorn_lines_use_the_same_formatter(stream: io.StringIO) -> None:
    _capture("json", stream)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    assert json.loads(stream.getvalue().strip())["message"] == "Started server process [42]"


def test_secrets_never_appear(stream: io.StringIO) -> None:
    _capture("json", stream)
    log = logging.getLogger("ferry.test")
    log.info("header Authorization: Bearer sk-live-123", extra={"api_key": "sk-live-456"})
    text = stream.getvalue()
    assert "sk-live-123" not in text
    assert "sk-live-456" not in text
    assert "[redacted]" in text


def test_level_filters(stream: io.StringIO) -> None:
    _capture("json", stream, level="WARNING")
    logging.getLogger("ferry.test").info("hidden")
    assert stream.getvalue() == ""


def test_settings_choose_format_and_level(stream: io.StringIO) -> None:
    level = configure_from_settings(Settings(log_format="json", log_level="DEBUG"))
    assert level == "DEBUG"
    assert log_format() == "json"
    assert logging.getLogger("ferry").level == logging.DEBUG
    assert configure_from_settings(Settings(log_format="json"), "warning") == "warning"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")
