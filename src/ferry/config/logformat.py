"""The two line formats, behind one function: JSON lines (python-json-logger) or console text.

Both carry a record's ``extra=`` fields: JSON as keys, console as ``key=value`` after the text."""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("console", "json")
# the attributes every LogRecord has: anything else on a record came in through ``extra=``
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's colored copy of its message
}
CONTEXT_FIELDS = ("request_id", "model", "version")
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s " + " ".join(
    f"%({name})s" for name in CONTEXT_FIELDS
)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What ``extra=`` put on ``record`` (the request context fields excluded)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key not in CONTEXT_FIELDS and not key.startswith("_")
    }


class ConsoleFormatter(logging.Formatter):
    """``time LEVEL logger [request model:version] message key=value ...``."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(model)s:%(version)s] %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = extra_fields(record)
        if not extras:
            return text
        head, newline, tail = text.partition("\n")  # after the message, before a traceback
        pairs = " ".join(f"{key}={value}" for key, value in extras.items())
        return f"{head} {pairs}{newline}{tail}"


def formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``fmt`` (``json`` or ``console``)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "console":
        return ConsoleFormatter()
    return JsonFormatter(
        _JSON_FIELDS,
        reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger", "exc_info": "exc"},
        json_default=str,
    )
