"""``ferry serve`` without the prediction log never imports SQLAlchemy or Alembic: serving
images leave them out. Checked in a fresh interpreter, on the app serve builds, after a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# what `ferry serve PATH` runs before uvicorn: the CLI module, the app, monitoring, one request
SCRIPT = """\
import json, sys
from pathlib import Path

import ferry.cli.main
import ferry.server.workers
from ferry.cli.serve import serve_app
from ferry.model.loaded import load
from starlette.testclient import TestClient

app = serve_app(load(Path(sys.argv[1])), auth=False, log_predictions=sys.argv[2])
row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
with TestClient(app) as client:
    answer = client.post("/v1/models/iris/predict", json={"instances": [row]})
    assert answer.status_code == 200, answer.text
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic"))
print(json.dumps(heavy))
"""


def imported_database_modules(bundle: Path, prediction_log: str, home: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["FERRY_HOME"] = str(home)
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SCRIPT, str(bundle), prediction_log],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_serve_without_prediction_log_imports_no_sqlalchemy(
    iris_bundle: Path, tmp_path: Path
) -> None:
    assert imported_database_modules(iris_bundle, "off", tmp_path) == []


@pytest.mark.parametrize("prediction_log", ["all", "0.5"])
def test_serve_with_prediction_log_imports_sqlalchemy(
    iris_bundle: Path, tmp_path: Path, prediction_log: str
) -> None:
    """The check above can fail: with the log on, the same script does import them."""
    modules = imported_database_modules(iris_bundle, prediction_log, tmp_path)
    assert "sqlalchemy" in modules
    assert "alembic" in modules


@pytest.mark.parametrize(
    ("args", "feature"),
    [(["--log-predictions", "all"], "--log-predictions all"), (["--auth"], "--auth")],
)
def test_serve_says_what_to_install_when_the_database_libraries_are_missing(
    iris_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    feature: str,
) -> None:
    """In a serving image (no SQLAlchemy), features that need the metadata database stop at
    once with a message naming what to add, before any port is opened."""
    from typer.testing import CliRunner

    from ferry.cli.main import app
    from ferry.config.settings import get_settings
    from ferry.errors import ConfigError

    for name in ("FERRY_PREDICTION_LOG", "FERRY_AUTH", "FERRY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FERRY_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "alembic", None)  # as if not installed
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["serve", str(iris_bundle), "--port", "1", "--workers", "1", *args]
        )
    finally:
        get_settings.cache_clear()
    assert isinstance(result.exception, ConfigError), result.output
    assert feature in result.exception.message
    assert "alembic is not installed" in result.exception.message
    assert "requirements" in result.exception.message
    assert "Serving iris" not in result.output  # stopped before the model was loaded
