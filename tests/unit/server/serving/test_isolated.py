"""Code models answer from a sandboxed process: same predictions, no secret, bounded."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from ferry.config.settings import Settings
from ferry.errors import FlavorError, ModelCrashed
from ferry.model import save
from ferry.model.loaded import load_bundle
from ferry.model.validation import batch_from_records
from ferry.security.sandbox import Sandbox
from ferry.server.serving.isolated import (
    IsolatedPredictor,
    ModelRaised,
    load_isolated,
    load_version,
)
from tests.sandbox_models import BOMB, IRIS, SNOOP, frame_rows, iris_example, write_predictor

FLAKY = """
import os, time
import numpy as np


class Flaky:
    def predict(self, frame):
        first = float(frame.iloc[0, 0])
        if first > 100:
            os._exit(3)
        if first > 50:
            time.sleep(30)
        if first < 0:
            raise ValueError("negative sepal")
        return np.zeros(len(frame), dtype=int)
"""


def bundle_of(tmp_path: Path, source: str, cls: str, **values: object) -> Path:
    file = write_predictor(tmp_path / f"src-{cls}", source, **values)
    bundle = tmp_path / f"bundle-{cls}"
    save(f"{file}:{cls}", bundle, example=iris_example(tmp_path), name=cls.lower())
    return bundle


def isolated(bundle: Path, **settings: object) -> IsolatedPredictor:
    model = load_isolated(
        bundle, Sandbox.from_settings(Settings(**settings)), timeout=5.0, load_timeout=60.0
    )
    assert isinstance(model.predictor, IsolatedPredictor)
    return model.predictor


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = Path(os.environ["FERRY_HOME"])
    (home / "auth.secret").write_text("a" * 64)
    monkeypatch.setenv("FERRY_JWT_SECRET", "jwt-secret-value")
    monkeypatch.setenv("FERRY_DATABASE_URL", "postgresql://ferry:hunter2@127.0.0.1/ferry")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    return home / "auth.secret"


def test_code_model_predicts_like_in_process(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, IRIS, "Iris")
    inside = load_bundle(bundle)
    outside = load_version(bundle)
    assert isinstance(outside.predictor, IsolatedPredictor)
    rows = frame_rows(50).to_dict("records")
    batch = batch_from_records(rows, outside.signature)
    np.testing.assert_array_equal(
        outside.predict_outputs(batch, ["predictions"])["predictions"],
        inside.predict_outputs(batch, ["predictions"])["predictions"],
    )
    assert outside.example is not None


def test_data_model_stays_in_process(iris_bundle: Path) -> None:
    assert not isinstance(load_version(iris_bundle).predictor, IsolatedPredictor)


def test_code_model_sees_no_secret_and_no_network(tmp_path: Path, secrets: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        bundle = bundle_of(tmp_path, SNOOP, "Snoop", secret_file=str(secrets), port=port)
        model = load_version(bundle)
        batch = batch_from_records(frame_rows(2).to_dict("records"), model.signature)
        seen = model.predict_outputs(batch, ["predictions"])["predictions"].tolist()
    # in load() and in predict(): no variable, no file, no connection; it may bind a port,
    # but only in its own network namespace
    assert seen == ["net:bind/net:bind"] * 2


def test_memory_bomb_in_load_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_TEST_DISARMED", "1")
    bundle = bundle_of(tmp_path, BOMB, "Bomb")
    monkeypatch.delenv("FERRY_TEST_DISARMED")
    with pytest.raises(FlavorError, match="MemoryError: the model process has 1024 MB"):
        isolated(bundle, sandbox_memory_mb=1024)


def test_crash_timeout_and_error_then_it_recovers(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, FLAKY, "Flaky")
    predictor = isolated(bundle)
    signature = load_isolated(bundle, predictor.sandbox, timeout=2, load_timeout=60).signature
    good = batch_from_records(frame_rows(3).to_dict("records"), signature)

    def rows(first: float) -> object:
        records = frame_rows(3).to_dict("records")
        records[0]["sepal length (cm)"] = first
        return batch_from_records(records, signature)

    assert predictor.predict(good).tolist() == [0, 0, 0]
    with pytest.raises(ModelCrashed, match="stopped while predicting") as crashed:
        predictor.predict(rows(200.0))  # type: ignore[arg-type]
    assert "exit" not in crashed.value.message
    assert predictor.predict(good).tolist() == [0, 0, 0]  # a new process
    with pytest.raises(ModelCrashed, match="did not answer within 5 s"):
        predictor.predict(rows(60.0))  # type: ignore[arg-type]
    with pytest.raises(ModelRaised, match="ValueError: negative sepal"):
        predictor.predict(rows(-1.0))  # type: ignore[arg-type]
    assert predictor.predict(good).tolist() == [0, 0, 0]
    assert predictor.restarts == 2


def test_dropped_model_stops_its_process(tmp_path: Path) -> None:
    import gc

    predictor = isolated(bundle_of(tmp_path, IRIS, "Iris"))
    process = predictor._process
    assert process is not None
    assert process.poll() is None
    del predictor
    gc.collect()
    assert process.poll() is not None  # evicted from the catalog: its process is gone
