"""Logging setup: console or JSON lines for Ferry's and uvicorn's loggers alike, with the
request id, model and version of the request being served on every record.

``configure_logging(level, fmt)`` installs one handler on the root logger; ``ferry``,
``uvicorn`` and ``uvicorn.error`` propagate to it (uvicorn is started with ``log_config=None``
so it keeps this setup, in the pre-forked workers too). uvicorn's own access log stays off:
``ferry.access`` (server/accesslog.py) writes one line per request instead."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ferry.config.logformat import extra_fields, formatter

if TYPE_CHECKING:
    from ferry.config.settings import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
model_var: ContextVar[str] = ContextVar("model", default="-")
version_var: ContextVar[str] = ContextVar("version", default="-")

# keys never written as they are, in ``extra=`` fields or uvicorn's own records
_SECRET_KEY = re.compile(r"authorization|api[_-]?key|password|secret|token|cookie", re.I)
# a credential inside a message ("Bearer abc", "X-API-Key: abc")
_SECRET_TEXT = re.compile(r"(?i)(bearer|basic|x-api-key[:=]?|api[_-]?key[:=])\s*[^\s,;'\"]+")
REDACTED = "[redacted]"
_HANDLER_NAME = "ferry"
_active_format = ["console"]


def bind_model(name: str, version: str) -> None:
    """The model the current request is served by: on every record it logs from now on."""
    model_var.set(name)
    version_var.set(str(version))


def current_request_id() -> str:
    """The current request's id, ``-`` outside a request."""
    return request_id_var.get()


def redact(text: str) -> str:
    return _SECRET_TEXT.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


class ContextFilter(logging.Filter):
    """Puts the request context on each record and scrubs credentials from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        # a field the call gave in ``extra=`` wins: a line about another model than the
        # request's (a registry write, a drift job, a load) names that one
        for name, var in (
            ("request_id", request_id_var),
            ("model", model_var),
            ("version", version_var),
        ):
            if name not in record.__dict__:
                setattr(record, name, var.get())
            else:
                setattr(record, name, str(record.__dict__[name]))
        for key in extra_fields(record):
            if _SECRET_KEY.search(key):
                setattr(record, key, REDACTED)
        if record.args:
            record.msg, record.args = record.getMessage(), None
        if isinstance(record.msg, str) and _SECRET_TEXT.search(record.msg):
            record.msg = redact(record.msg)
        return True


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """One handler in ``fmt`` (``console`` or ``json``) at ``level`` for Ferry, uvicorn and
    any library that logs; safe to call more than once."""
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    for name in ("ferry", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.setLevel(numeric)
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    logging.captureWarnings(True)  # warnings.warn lines in the same format
    _active_format[0] = fmt


def log_format() -> str:
    """The format configure_logging last installed (``console`` before it is called)."""
    return _active_format[0]


def configure_from_settings(settings: Settings, level: str | None = None) -> str:
    """configure_logging with FERRY_LOG_FORMAT and ``level`` (a command's option) or
    FERRY_LOG_LEVEL; the level, for uvicorn_options."""
    chosen = level or settings.log_level
    configure_logging(chosen, settings.log_format)
    return chosen


def uvicorn_options(level: str) -> dict[str, Any]:
    """What uvicorn needs to keep the setup above: no config of its own, no access log."""
    return {"log_config": None, "log_level": level.lower(), "access_log": False}
