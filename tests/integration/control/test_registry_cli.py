"""The registry round trip over HTTP with the ``ferry`` CLI: register a bundle and a raw file,
list, move the alias, pull, and serve-ready bundles that predict like the model."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import ferry.model
from ferry.registry import fingerprint_data
from tests.integration.control.conftest import ControlServer

pytestmark = pytest.mark.integration

Data = tuple[pd.DataFrame, pd.Series]


def rows_of(output: str) -> list[list[str]]:
    """The body rows of every rich table in ``output``, as stripped cells."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def ok(result: object) -> str:
    assert getattr(result, "returncode", 1) == 0, f"{result}"
    return str(getattr(result, "stdout", ""))


def test_register_list_alias_pull_lineage(
    control_server: ControlServer,
    tmp_path: Path,
    iris_bundle: Path,
    iris_model: LogisticRegression,
    iris_data: Data,
) -> None:
    X, y = iris_data
    server = control_server

    # 1: the iris bundle, with its alias and a metric
    out = ok(
        server.ferry(
            "register",
            str(iris_bundle),
            "--name",
            "iris",
            "--alias",
            "production",
            "--metric",
            "acc=0.97",
            "--param",
            "C=1.0",
            "--description",
            "logistic regression",
        )
    )
    assert "Registered iris version 1" in out
    assert "alias production -> version 1" in out

    # 2: a different model as a raw joblib file with an example CSV, its parent and its data
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    model_file = tmp_path / "tree.joblib"
    joblib.dump(tree, model_file)
    example = tmp_path / "example.csv"
    X.sample(12, random_state=4).to_csv(example, index=False)
    train = tmp_path / "train.csv"
    X.assign(species=y).to_csv(train, index=False)
    out = ok(
        server.ferry(
            "register",
            str(model_file),
            "--name",
            "iris",
            "--example",
            str(example),
            "--parent",
            "1",
            "--data",
            str(train),
            "--metric",
            "acc=0.95",
            "--code-ref",
            "git:feedbeef",
        )
    )
    assert "Registered iris version 2" in out

    # the same file again is the same version
    again = ok(
        server.ferry(
            "register", str(model_file), "--name", "iris", "--example", str(example), "--json"
        )
    )
    answer = json.loads(again)
    assert (answer["version"], answer["created"]) == (2, False)

    listed = rows_of(ok(server.ferry("versions", "ls", "iris")))
    by_version = {row[0]: row for row in listed}
    assert set(by_version) == {"1", "2"}
    assert "production" in by_version["1"]
    assert "acc=0.97" in by_version["1"]
    assert by_version["2"][7] == "iris/1"  # parent column

    models = rows_of(ok(server.ferry("models", "ls")))
    assert models[0][:3] == ["iris", "2", "production=1"]

    out = ok(server.ferry("alias", "set", "iris", "production", "2"))
    assert "iris@production -> version 2" in out

    # pull what production points at: a bundle that loads here and predicts like the tree
    out = ok(server.ferry("pull", "iris@production", "--out", str(tmp_path / "prod")))
    assert "Pulled iris version 2" in out
    pulled = ferry.model.load(tmp_path / "prod")
    assert pulled.predict(X).tolist() == tree.predict(X).tolist()
    assert pulled.predict_proba(X[:10]).tolist() == tree.predict_proba(X[:10]).tolist()
    first = ferry.model.load(Path(ok_pull(server, "iris/1", tmp_path)))
    assert first.predict(X).tolist() == iris_model.predict(X).tolist()

    lineage = rows_of(ok(server.ferry("lineage", "iris", "2")))
    assert [row[:3] for row in lineage] == [["ancestor", "iris/1", "1"], ["this", "iris/2", "0"]]
    digest, count = fingerprint_data(train)
    assert lineage[1][3].startswith(digest[:12])
    assert f"({count} rows)" in lineage[1][3]
    assert lineage[1][4] == "git:feedbeef"

    assert rows_of(ok(server.ferry("lineage", "iris@production"))) == lineage  # a reference too

    shown = json.loads(ok(server.ferry("versions", "show", "iris", "--json")))
    assert shown["version"] == 2  # production now

    ok(server.ferry("alias", "rm", "iris", "production"))
    missing = server.ferry("pull", "iris@production", "--out", str(tmp_path / "none"))
    assert missing.returncode == 1
    assert "alias_not_found" in missing.stderr
    assert not (tmp_path / "none").exists()


def ok_pull(server: ControlServer, ref: str, tmp_path: Path) -> str:
    out = tmp_path / ref.replace("/", "-")
    ok(server.ferry("pull", ref, "--out", str(out)))
    return str(out)


def test_cli_errors_are_one_line_and_exit_1(control_server: ControlServer, tmp_path: Path) -> None:
    corrupt = tmp_path / "model.joblib"
    corrupt.write_bytes(b"definitely not a pickle")
    result = control_server.ferry("register", str(corrupt), "--name", "iris")
    assert result.returncode == 1
    assert "error (unsafe_model)" in result.stderr  # the pickle scanner cannot parse it
    bad = control_server.ferry("register", str(corrupt), "--name", "iris", "--metric", "acc")
    assert bad.returncode == 2
    assert "KEY=VALUE" in bad.stderr
    unreachable = control_server.ferry("models", "ls", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "connection_failed" in unreachable.stderr
