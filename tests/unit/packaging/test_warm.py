"""The image build's warm-up: a real ``ferry serve`` answers the stored example, once in
process and once with forked workers, and Python writes bytecode for what serving imported,
and nothing more."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ferry.errors import BuildFailed
from ferry.packaging.warm import example_requests, warm


def test_warm_up_answers_the_example_with_one_and_two_workers(
    iris_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bytecode the servers write lands here instead of beside the sources
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the warm-up turns it back on
    lines = warm(iris_bundle)
    for workers in (1, 2):
        assert f"workers={workers} GET /readyz 200" in lines
        assert f"workers={workers} POST /v1/models/iris/predict 200" in lines
        assert f"workers={workers} POST /invocations 200" in lines
    written = [p.as_posix() for p in (tmp_path / "pycache").rglob("*.pyc")]
    # what serving imports was compiled (the server, the model's libraries)...
    tag = sys.implementation.cache_tag
    for package in ("uvicorn", "fastapi", "sklearn", "pandas"):
        assert any(p.endswith(f"/{package}/__init__.{tag}.pyc") for p in written), package
    # ...and what it never imports was not (the metadata database)
    assert not any("/sqlalchemy/" in p for p in written)


def test_example_requests_follow_the_stored_example(iris_bundle: Path) -> None:
    requests = dict(example_requests(iris_bundle))
    records = requests["/v1/models/iris/predict"]["instances"]
    split = requests["/invocations"]["dataframe_split"]
    assert len(records) == len(split["data"]) > 0
    assert list(records[0]) == split["columns"]


def test_a_server_that_cannot_start_fails_the_warm_up(iris_bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "iris"
    shutil.copytree(iris_bundle, broken)
    model_file = next(p for p in (broken / "model").iterdir() if p.is_file())
    model_file.write_bytes(model_file.read_bytes() + b"tampered")  # checksum no longer matches
    with pytest.raises(BuildFailed, match="ferry serve exited"):
        warm(broken, workers=(1,))
