"""Durations as users type them, bounded: an overflowing one is the caller's error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferry.errors import InvalidRequest
from ferry.monitoring.durations import MAX_DURATION, parse_duration
from ferry.monitoring.predlog import parse_duration as log_duration
from ferry.monitoring.predlog import parse_time
from ferry.security.keys import parse_duration as key_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("1.5h", timedelta(minutes=90)), ("2W", timedelta(weeks=2))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert log_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["99999999999d", "999999999999999w", "36526d", "9999999999999999999999d", "1e9d"]
)
def test_overflowing_durations_name_the_field(text: str) -> None:
    for parse in (parse_duration, log_duration):
        with pytest.raises(InvalidRequest) as caught:
            parse(text, field="window")
        assert caught.value.details["field"] == "window"
        assert "window" in caught.value.message
    with pytest.raises(InvalidRequest) as caught:
        parse_time(text, "since")
    assert caught.value.details["field"] == "since"


def test_the_longest_duration_is_a_century_back_from_now() -> None:
    assert parse_duration(f"{MAX_DURATION.days}d") == MAX_DURATION
    assert parse_time(f"{MAX_DURATION.days}d") < datetime.now(UTC) - timedelta(days=36_000)


def test_key_lifetimes_are_bounded_too() -> None:
    with pytest.raises(InvalidRequest) as caught:
        key_duration("99999999999d")
    assert caught.value.details["field"] == "expires"
    assert key_duration("30d") == timedelta(days=30)
