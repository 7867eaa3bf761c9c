"""The CLI against real ``ferry serve`` processes: predict, check, and the examples' train.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import ferry.model
from ferry.cli.main import app
from tests.integration.conftest import ServeFactory, platform_server

pytestmark = pytest.mark.integration

Data = tuple[pd.DataFrame, pd.Series]
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def iris_url(serve: ServeFactory, iris_bundle: Path) -> str:
    return serve(iris_bundle)


@pytest.fixture
def rows(iris_data: Data) -> pd.DataFrame:
    X, _ = iris_data
    return X.iloc[[1, 52, 104, 148]]


@pytest.fixture
def rows_file(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"instances": rows.to_dict("records")}))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command line, as users run it (FerryError -> message and exit code)."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "ferry", *args], capture_output=True, text=True, timeout=120
    )


def test_predict_url_gives_the_models_classes(
    iris_url: str, rows_file: Path, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    result = runner.invoke(app, ["predict", iris_url, "--data", str(rows_file), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    assert answer["model"] == "iris"
    assert answer["request_id"]


def test_predict_url_csv_with_probabilities(
    iris_url: str, tmp_path: Path, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    args = ["predict", iris_url, "-d", str(data), "-n", "iris", "-o", "label", "-o", "proba"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["predictions"] == iris_model.predict(rows).tolist()
    np.testing.assert_allclose(answer["probabilities"], iris_model.predict_proba(rows))


def test_predict_url_prints_a_table(
    iris_url: str, rows_file: Path, rows: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    result = run_cli("predict", iris_url, "--data", str(rows_file))
    assert result.returncode == 0, result.stderr
    body = [line for line in result.stdout.splitlines() if line[:1] == "│"]
    predicted = [line.strip("│").split("│")[-1].strip() for line in body]
    assert predicted == [str(p) for p in iris_model.predict(rows).tolist()]


def test_predict_url_bad_rows_is_an_error_message(iris_url: str, tmp_path: Path) -> None:
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([{"sepal_length": 5.0, "petal_colour": "blue"}]))
    result = run_cli("predict", iris_url, "--data", str(data))
    assert result.returncode == 1
    assert "unknown_column" in result.stderr
    assert "petal_colour" in result.stderr


def test_check_passes_on_the_served_bundle(iris_url: str, iris_bundle: Path) -> None:
    result = run_cli("check", iris_url, "--bundle", str(iris_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS")


def test_check_fails_against_a_different_model(
    serve: ServeFactory,
    tmp_path_factory: pytest.TempPathFactory,
    iris_bundle: Path,
    iris_data: Data,
) -> None:
    X, y = iris_data
    weak = LogisticRegression(C=1e-3, max_iter=1000).fit(X, y)  # same columns, other answers
    dest = tmp_path_factory.mktemp("bundles") / "weak-iris"
    ferry.model.save(weak, dest, example=X.head(5), name="iris")
    result = run_cli("check", serve(dest), "--bundle", str(iris_bundle))
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("FAIL")
    assert "mismatches" in result.stdout
    assert "probabilities" in result.stdout


def test_check_fails_when_the_server_refuses_the_example(
    serve: ServeFactory, mixed_bundle: Path, iris_bundle: Path
) -> None:
    result = run_cli("check", serve(mixed_bundle), "--bundle", str(iris_bundle), "--name", "mixed")
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("FAIL")
    assert "unknown_column" in result.stdout


@pytest.mark.parametrize("example", ["iris", "diabetes"])
def test_example_train_script_makes_a_bundle_that_serves(
    example: str, serve: ServeFactory, tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    trained = subprocess.run(  # noqa: S603 - the repository's own example
        [sys.executable, str(ROOT / "examples" / example / "train.py"), str(dest)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr
    model = ferry.model.load(dest)
    assert model.name == example
    url = serve(dest)
    check = run_cli("check", url, "--bundle", str(dest))
    assert check.returncode == 0, check.stdout + check.stderr
    assert model.example is not None
    frame = model.example.to_frame()
    data = tmp_path / "rows.csv"
    frame.to_csv(data, index=False)
    result = runner.invoke(app, ["predict", url, "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["predictions"] == model.predict(frame).tolist()


def readme_blocks() -> list[tuple[str, str]]:
    """(section, script) for each bash block of the README, without `make` and `ferry serve`."""
    text = (ROOT / "README.md").read_text()
    blocks: list[tuple[str, str]] = []
    section = ""
    for part in re.split(r"^## (.*)$", text, flags=re.M):
        if "\n" not in part:  # a heading captured by the split
            section = part.strip()
            continue
        for block in re.findall(r"```bash\n(.*?)```", part, flags=re.S):
            lines = block.splitlines()
            kept = [line for line in lines if not line.startswith(("make ", "ferry serve"))]
            if any(line.strip() and not line.lstrip().startswith("#") for line in kept):
                blocks.append((section, "\n".join(kept)))
    return blocks


README_BLOCKS = readme_blocks()


@pytest.mark.parametrize(
    ("section", "script"), README_BLOCKS, ids=[f"{n}-{s}" for n, (s, _) in enumerate(README_BLOCKS)]
)
def test_readme_examples_run_against_the_iris_example(
    section: str, script: str, make_run_server: str, iris_example: Path, tmp_path: Path
) -> None:
    """Each README block runs against what `make run` starts: `ferry server` with the iris and
    diabetes examples registered (alias production)."""
    url = make_run_server
    (tmp_path / "examples" / "iris").mkdir(parents=True)
    (tmp_path / "examples" / "iris" / "bundle").symlink_to(iris_example)
    (tmp_path / ".curlrc").write_text("max-time = 60\n")  # a hung server fails, never blocks
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "CURL_HOME": str(tmp_path)}
    result = subprocess.run(  # noqa: S603 - the README's own examples
        ["bash", "-euo", "pipefail", "-c", script.replace("http://127.0.0.1:8000", url)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    errors = ('{"error":{"code"', '{"error_code"', '{"error":"', "FAIL")
    if section == "Errors":
        assert any(error in result.stdout for error in errors), result.stdout
    else:
        assert not any(error in result.stdout for error in errors), result.stdout


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/*/train.py's bundles, written to examples_dir/<name>/bundle."""
    root = tmp_path_factory.mktemp("examples")
    for name in ("iris", "diabetes"):
        subprocess.run(  # noqa: S603 - the repository's own example
            [
                sys.executable,
                str(ROOT / "examples" / name / "train.py"),
                str(root / name / "bundle"),
            ],
            capture_output=True,
            timeout=300,
            check=True,
        )
    return root


@pytest.fixture(scope="session")
def iris_example(examples_dir: Path) -> Path:
    return examples_dir / "iris" / "bundle"


@pytest.fixture(scope="session")
def make_run_server(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """What `make run` starts: the examples registered by examples/register.py, then
    `ferry server` over that registry."""
    home = tmp_path_factory.mktemp("make-run-home")
    env = {**os.environ, "FERRY_HOME": str(home)}
    subprocess.run(  # noqa: S603 - the repository's own script
        [sys.executable, str(ROOT / "examples" / "register.py"), "http://x", str(examples_dir)],
        env=env,
        capture_output=True,
        timeout=300,
        check=True,
    )
    with platform_server(home, "--workers", "1", log=home / "server.log") as url:
        yield url
