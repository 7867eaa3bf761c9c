"""show_listing: what every command with ``--json`` prints, JSON or its human view."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from ferry.cli.output import show_listing


class Item(BaseModel):
    name: str
    at: datetime


def test_json_dumps_a_pydantic_model_in_json_mode(capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[str] = []
    item = Item(name="iris", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    show_listing(True, item, lambda: shown.append("table"))
    assert json.loads(capsys.readouterr().out) == {"name": "iris", "at": "2026-01-02T03:04:05Z"}
    assert shown == []


def test_json_prints_plain_data_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    show_listing(True, [{"site": "a", "bundles": 2}], lambda: None)
    assert json.loads(capsys.readouterr().out) == [{"site": "a", "bundles": 2}]


def test_otherwise_the_table_is_shown_and_no_json(capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[str] = []
    show_listing(False, [{"site": "a"}], lambda: shown.append("table"))
    assert shown == ["table"]
    assert capsys.readouterr().out == ""
