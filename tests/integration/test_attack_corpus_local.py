"""The attack corpus against every local load (issue 13, acceptance, local half): no hostile
file runs through ``ferry serve`` (it refuses to start), ``ferry inspect``, ``ferry predict
PATH``, ``ferry save`` or ``ferry.model.load`` without trust; with trust, code models load."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ferry.model
from ferry.cli.main import app
from ferry.errors import FerryError
from tests.attack_corpus import CODE_KINDS, KINDS, build, ran, watching
from tests.integration.conftest import ferry_cli, free_port

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    path.write_text("x,sepal_length\n1.0,2.0\n", encoding="utf-8")
    return path


def _hostile(kind: str, tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    return build(kind, tmp_path / "model", marker), marker


@pytest.mark.parametrize("kind", KINDS)
def test_ferry_serve_refuses_to_start(kind: str, tmp_path: Path) -> None:
    path, marker = _hostile(kind, tmp_path)
    env = {"FERRY_HOME": str(tmp_path / "home")}
    with watching(kind, marker):
        port = str(free_port())
        result = ferry_cli("serve", str(path), "--port", port, "--workers", "1", env=env)
    assert result.returncode != 0, result.stdout
    assert "error" in result.stderr
    assert not ran(marker), (kind, marker.read_text() if marker.exists() else "")


@pytest.mark.parametrize("kind", KINDS)
def test_local_commands_and_load_refuse(kind: str, tmp_path: Path, rows: Path) -> None:
    path, marker = _hostile(kind, tmp_path)
    dest = tmp_path / "bundle"
    commands = {
        "inspect": ["inspect", str(path)],
        "predict": ["predict", str(path), "--data", str(rows)],
        "save": ["save", str(path), str(dest), "--example", str(rows)],
    }
    with watching(kind, marker):
        for name, args in commands.items():
            result = runner.invoke(app, args)
            assert isinstance(result.exception, FerryError), (kind, name, result.exception)
            assert not ran(marker), (kind, name)
        with pytest.raises(FerryError):
            ferry.model.load(path)
    assert not dest.exists()
    assert not ran(marker), kind


@pytest.mark.filterwarnings("ignore::UserWarning")  # mlflow's own, about type hints
@pytest.mark.parametrize("kind", CODE_KINDS)
def test_code_models_run_only_with_trust(kind: str, tmp_path: Path) -> None:
    """The opt-out is real: with trust=True the code model's module runs (here, in this
    process; the sandbox keeps it from secrets on the server)."""
    path, marker = _hostile(kind, tmp_path)
    with pytest.raises(FerryError, match="--trust"):
        ferry.model.load(path)
    with contextlib.suppress(FerryError):  # a raw custom class declares no inputs: refused
        ferry.model.load(path, trust=True)  # after its module ran
    assert ran(marker)
