"""Durations as users type them: ``90s``, ``15m``, ``1h``, ``7d``, ``2w``.

The one parser for every route and command that takes one (windows, ``since``, retention,
API-key lifetimes): a ground module, so every layer can import it. The prediction log's
``parse_time`` builds on it. A duration is at most
MAX_DURATION: ``99999999999d`` overflowed ``timedelta`` (and ``now - 1000000d`` overflowed
``datetime``), an OverflowError answered as a 500.
"""

from __future__ import annotations

import re
from datetime import timedelta

from ferry.errors import InvalidRequest

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,9})?)\s*([smhdw])\s*$")
# a century: longer than any log is kept, and ``now - MAX_DURATION`` is a valid datetime
MAX_DURATION = timedelta(days=36_525)


def is_duration(text: str) -> bool:
    """Whether ``text`` is shaped like a duration (``1h``), whatever its size."""
    return _DURATION.match(text.lower()) is not None


def parse_duration(text: str, field: str = "window") -> timedelta:
    """``90s``, ``1.5h``, ``7d``, ``2w`` -> a timedelta; InvalidRequest naming ``field`` else."""
    text = text or ""
    match = _DURATION.match(text.lower())
    if match is None or float(match[1]) <= 0:
        raise InvalidRequest(
            f"{field}: {text!r} is not a duration such as 90s, 15m, 1h, 7d or 2w",
            field=field,
            value=text[:40],
        )
    seconds = float(match[1]) * _UNITS[match[2]]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidRequest(
            f"{field}: {text!r} is longer than the longest duration accepted, "
            f"{MAX_DURATION.days} days",
            field=field,
            value=text[:40],
            limit=f"{MAX_DURATION.days}d",
        )
    return timedelta(seconds=seconds)
