"""The prediction log: every answered request (or a sample) with its inputs and outputs,
written asynchronously to the metadata store, read back by ``ferry logs``, replay, feedback
and drift detection."""

from ferry.monitoring.predlog.reader import get, open_store, read_inputs, read_records
from ferry.monitoring.predlog.records import (
    Feedback,
    Labeled,
    LoggedPrediction,
    parse_duration,
    parse_time,
)
from ferry.monitoring.predlog.store import PredictionStore
from ferry.monitoring.predlog.writer import LogPolicy, PredictionLog

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
