"""``ferry deploy ci --name`` for a model the registry does not know yet (no server needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ferry.cli.main import app
from ferry.errors import InvalidName

runner = CliRunner()


def test_ci_for_an_unregistered_model(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["deploy", "ci", "--name", "churn", "--provider", "github", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "ci kit for churn (not registered)" in result.output
    workflow = tmp_path / ".github" / "workflows" / "ferry-churn.yml"
    steps = yaml.safe_load(workflow.read_text())["jobs"]["model"]["steps"]
    install = next(s["run"] for s in steps if s.get("name", "").startswith("Install"))
    assert install.endswith(" -r requirements.txt")
    check = subprocess.run(  # noqa: S603 - the dev extra's validator
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_ci_needs_a_ref_or_a_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "ci", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--name" in result.output
    bad = runner.invoke(app, ["deploy", "ci", "--name", "../x", "--out", str(tmp_path)])
    assert bad.exit_code == 1
    assert isinstance(bad.exception, InvalidName)  # main() prints it and exits 1
    assert not list(tmp_path.iterdir())
