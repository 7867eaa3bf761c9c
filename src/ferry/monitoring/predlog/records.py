"""What the prediction log holds: one answered request, and the truth sent back for it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ferry.errors import InvalidRequest

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, slots=True)
class LoggedPrediction:
    """One logged request. ``inputs``/``outputs`` are columns by name (lists of row values)."""

    request_id: str
    model: str
    version: str
    protocol: str
    status: int
    error_code: str | None
    rows: int
    latency: float  # seconds, parsing to serialization
    principal: str | None
    at: datetime  # when the request arrived (UTC)
    inputs: dict[str, list[Any]] | None
    outputs: dict[str, list[Any]] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "protocol": self.protocol,
            "status": self.status,
            "error_code": self.error_code,
            "rows": self.rows,
            "latency": self.latency,
            "principal": self.principal,
            "at": self.at.isoformat(),
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


@dataclass(frozen=True, slots=True)
class Feedback:
    """The true values for a logged request: one per predicted row."""

    request_id: str
    model: str
    version: str
    truth: list[Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Labeled:
    """A logged prediction joined with its feedback (what performance is computed from)."""

    prediction: LoggedPrediction
    truth: list[Any]


def parse_duration(text: str, field: str = "window") -> timedelta:
    """``90s``, ``30m``, ``1h``, ``7d``, ``2w`` -> a timedelta (InvalidRequest naming ``field``)."""
    match = _DURATION.match(text or "")
    if match is None or float(match.group(1)) <= 0:
        raise InvalidRequest(
            f"{field} {text!r} is not a duration; use a number and a unit, e.g. 90s, 30m, 1h, 7d",
            field=field,
            value=text,
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_time(text: str, field: str = "since") -> datetime:
    """A duration back from now (``1h``) or an ISO 8601 time (naive means UTC)."""
    if _DURATION.match(text or ""):
        return datetime.now(UTC) - parse_duration(text, field)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{field} {text!r} is neither a duration (1h, 30m) nor an ISO 8601 time",
            field=field,
            value=text,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
