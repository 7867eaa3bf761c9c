"""JSON request bodies: orjson, and Python's json for the numbers orjson refuses.

Clients send ``NaN``, ``Infinity`` and ``-Infinity`` (Python's ``json.dumps`` writes them),
``1e999`` and integers of thousands of digits; orjson refuses all of them, so the answer was a
400 ``malformed_body`` naming a character position. Read again by Python's json (only then:
it is about ten times slower), they become NaN (a null, where the column is nullable) and
infinities, which validation refuses naming the column and row.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from ferry.errors import MalformedBody

# Python's int() refuses more than 4,300 digits; any integer that long is beyond float64
_MAX_DIGITS = 4000


def loads(body: bytes | memoryview, what: str) -> Any:
    """``body`` parsed; MalformedBody("{what} is not valid JSON: ...") when it is not."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not _about_numbers(exc, body):
            raise MalformedBody(f"{what} is not valid JSON: {exc}") from exc
        try:
            return json.loads(bytes(body), parse_int=_integer)
        except (ValueError, RecursionError):
            raise MalformedBody(f"{what} is not valid JSON: {exc}") from exc


def _about_numbers(exc: orjson.JSONDecodeError, body: bytes | memoryview) -> bool:
    """Whether orjson stopped at a number it refuses (not at anything else)."""
    if "infinity" in exc.msg:
        return True
    at = bytes(body[exc.pos : exc.pos + 8])
    return at == b"Infinity" or at[:3] == b"NaN"


def _integer(text: str) -> int | float:
    if len(text) <= _MAX_DIGITS:
        return int(text)
    return -math.inf if text.startswith("-") else math.inf
