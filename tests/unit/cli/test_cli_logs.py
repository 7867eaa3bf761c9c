"""``ferry logs``, ``ferry replay`` and ``ferry check`` on a home that never logged a request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ferry.cli.main import app
from ferry.config.settings import get_settings
from ferry.errors import PredictionNotFound

runner = CliRunner()


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FERRY_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_logs_of_a_fresh_home_are_empty(fresh_home: Path) -> None:
    result = runner.invoke(app, ["logs", "iris", "--since", "1h", "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == []
    assert (fresh_home / "ferry.db").exists()


def test_replay_of_an_unknown_id_names_it(fresh_home: Path) -> None:
    result = runner.invoke(app, ["replay", "no-such-request"])
    # the error ferry's entry point prints (exit code 1), not a missing table
    assert isinstance(result.exception, PredictionNotFound)
    assert "'no-such-request'" in result.exception.message


def test_saved_cases_of_a_database_without_the_schema(fresh_home: Path) -> None:
    """``ferry check`` looks for saved cases; an empty ferry.db (made by some other command)
    gets the schema and yields none, instead of failing on a missing table."""
    import sqlite3

    from ferry.cli.predict import _saved_cases

    fresh_home.mkdir(parents=True)
    sqlite3.connect(fresh_home / "ferry.db").close()
    assert (fresh_home / "ferry.db").exists()
    assert _saved_cases("iris") == []
