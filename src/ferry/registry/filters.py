"""Search filters for lists: ``team`` / ``team=vision`` for tags, ``acc>=0.9`` for metrics."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from ferry.errors import InvalidRequest
from ferry.registry.names import check_key

Operator = Literal[">=", "<=", ">", "<", "==", "!="]
OPERATORS: tuple[Operator, ...] = (">=", "<=", "==", "!=", ">", "<")
MAX_LIMIT = 1000

_METRIC = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|==|!=|=|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class TagFilter:
    key: str
    value: str | None = None  # None: the tag is present with any value


@dataclass(frozen=True, slots=True)
class MetricFilter:
    key: str
    op: Operator
    value: float


def parse_tag_filter(text: str | None) -> TagFilter | None:
    if text is None:
        return None
    key, sep, value = text.partition("=")
    check_key(key.strip(), "tag")
    return TagFilter(key.strip(), value if sep else None)


def parse_metric_filter(text: str | None) -> MetricFilter | None:
    if text is None:
        return None
    match = _METRIC.match(text)
    if match is None:
        raise InvalidRequest(
            f"metric filter {text!r} must look like 'acc>=0.9' (operators: {', '.join(OPERATORS)})",
            field="metric",
            value=text,
        )
    key, op, raw = match.groups()
    check_key(key, "metric")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidRequest(
            f"metric filter {text!r}: {raw!r} is not a finite number", field="metric", value=text
        )
    operator: Operator = "==" if op == "=" else op  # type: ignore[assignment]
    return MetricFilter(key, operator, value)


def check_page(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}", field="limit", value=limit
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
        raise InvalidRequest(
            f"offset must be 0 or more, got {offset!r}", field="offset", value=offset
        )
