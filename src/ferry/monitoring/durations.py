"""Durations as users type them: ``90s``, ``15m``, ``1h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from ferry.errors import InvalidRequest

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str, *, field: str = "window") -> timedelta:
    match = _DURATION.match(text.lower())
    if match is None or float(match[1]) <= 0:
        raise InvalidRequest(
            f"{field}: {text!r} is not a duration such as 90s, 15m, 1h, 7d or 2w", field=field
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
