"""The prediction log: every answered request (or a sample) with its inputs and outputs,
written asynchronously to the metadata store, read back by ``ferry logs``, replay, feedback
and drift detection.

The store and the reader need SQLAlchemy; they are imported on first use (PEP 562), so a
server that does not log predictions (``ferry serve`` in an image) never imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ferry.durations import parse_duration
from ferry.monitoring.predlog.records import (
    Feedback,
    Labeled,
    LoggedPrediction,
    parse_time,
)
from ferry.monitoring.predlog.writer import LogPolicy, PredictionLog

if TYPE_CHECKING:
    from ferry.monitoring.predlog.reader import get, open_store, read_inputs, read_records
    from ferry.monitoring.predlog.store import PredictionStore

# name -> the module that defines it, imported when the name is first asked for
_LAZY = {
    "PredictionStore": "ferry.monitoring.predlog.store",
    "get": "ferry.monitoring.predlog.reader",
    "open_store": "ferry.monitoring.predlog.reader",
    "read_inputs": "ferry.monitoring.predlog.reader",
    "read_records": "ferry.monitoring.predlog.reader",
}

__all__ = [
    "Feedback",
    "Labeled",
    "LogPolicy",
    "LoggedPrediction",
    "PredictionLog",
    "PredictionStore",
    "get",
    "open_store",
    "parse_duration",
    "parse_time",
    "read_inputs",
    "read_records",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
