"""What the prediction log holds: one answered request, and the truth sent back for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ferry import durations
from ferry.errors import InvalidRequest


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
    client_request_id: str | None = None  # the caller's X-Request-ID, kept beside ours

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
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


def parse_time(text: str, field: str = "since") -> datetime:
    """A duration back from now (``1h``) or an ISO 8601 time (naive means UTC)."""
    if durations.is_duration(text or ""):
        return datetime.now(UTC) - durations.parse_duration(text, field)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{field} {text!r} is neither a duration (1h, 30m) nor an ISO 8601 time",
            field=field,
            value=text[:40],
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
