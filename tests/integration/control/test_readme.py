"""The README's "Registry over HTTP" examples run, in order, against a real control plane."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from ferry.client import Client
from tests.integration.control.conftest import REPO, ControlServer

pytestmark = pytest.mark.integration

SECTION = "Registry over HTTP"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def section_blocks() -> list[tuple[str, str]]:
    """(language, code) for each sh and python block of the section, in order."""
    text = (REPO / "README.md").read_text()
    parts = re.split(r"^## (.*)$", text, flags=re.M)
    body = parts[parts.index(SECTION) + 1]
    return re.findall(r"```(sh|python)\n(.*?)```", body, flags=re.S)


def workspace(root: Path) -> Path:
    """What the examples name: the iris example bundle, a raw model, rows, data, requirements."""
    subprocess.run(  # noqa: S603 - the repository's own example
        [
            sys.executable,
            str(REPO / "examples" / "iris" / "train.py"),
            str(root / "examples/iris/bundle"),
        ],
        capture_output=True,
        timeout=300,
        check=True,
    )
    iris = load_iris(as_frame=True)
    X = iris.data.set_axis(COLUMNS, axis=1)
    y = iris.target.map(dict(enumerate(iris.target_names)))
    joblib.dump(
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y), root / "model.joblib"
    )
    X.groupby(y).head(2).to_csv(root / "rows.csv", index=False)
    X.assign(species=y).to_csv(root / "train.csv", index=False)
    (root / "requirements.txt").write_text("scikit-learn\n")
    return root


def test_registry_examples_run(control_server: ControlServer, tmp_path: Path) -> None:
    blocks = section_blocks()
    assert [language for language, _ in blocks] == ["sh", "python", "sh"]
    cwd = workspace(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "160",
    }
    for language, code in blocks:
        code = code.replace("http://127.0.0.1:8000", control_server.url)
        if language == "sh":
            command = [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                f"export FERRY_URL={control_server.url}\n{code}",
            ]
        else:
            command = [sys.executable, "-c", code]
        result = subprocess.run(  # noqa: S603 - the README's own examples
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"{code}\n{result.stdout}\n{result.stderr}"
        assert '{"error"' not in result.stdout, result.stdout
    with Client(control_server.url) as client:
        iris = client.registered_model("iris")
        assert iris.latest_version is not None
        assert iris.latest_version >= 2
        assert set(iris.aliases) == {"production", "staging"}
    assert (cwd / "iris-prod" / "ferry.yaml").is_file()
    assert (cwd / "iris-from-python" / "ferry.yaml").is_file()
