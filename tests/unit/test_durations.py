"""Durations as users type them, bounded: an overflowing one is the caller's error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferry.durations import MAX_DURATION, parse_duration
from ferry.errors import InvalidRequest
from ferry.monitoring.predlog import parse_duration as log_duration
from ferry.monitoring.predlog import parse_time


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


def test_the_prediction_log_reexports_the_one_parser() -> None:
    assert log_duration is parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3600s", timedelta(hours=1)),
        ("90m", timedelta(minutes=90)),
        (" 12h ", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("0.5s", timedelta(milliseconds=500)),
    ],
)
def test_every_unit_is_accepted(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "0.0h", "1y", "soon", "-3d", "", "1 h 2m", "h"])
def test_malformed_durations_name_the_field(text: str) -> None:
    with pytest.raises(InvalidRequest, match="not a duration") as caught:
        parse_duration(text, "expires")
    assert caught.value.details["field"] == "expires"
    assert "expires" in caught.value.message


def test_key_lifetimes_are_bounded_too() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_duration("99999999999d", "expires")
    assert caught.value.details["field"] == "expires"
    assert caught.value.details["limit"] == f"{MAX_DURATION.days}d"
