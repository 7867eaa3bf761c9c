"""Safe uploads against a real ``ferry server``: malicious pickles are refused over HTTP with the
offending import named and never run (the marker file never appears), wherever the payload
hides; benign scikit-learn, XGBoost and LightGBM files are registered; ``trust=true`` lets a
harmless file with an unknown import through and is recorded in the audit log."""

from __future__ import annotations

import fractions
import hashlib
import os
import pickle
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import pytest
import yaml

import ferry.model
from ferry.client import Client
from ferry.model.manifest import MANIFEST_FILE
from tests.integration.conftest import free_port, start_ferry, stop_server
from tests.pickle_cases import benign_models, iris_frame, malicious_files

pytestmark = pytest.mark.integration
API = "/api/v1"


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    log: Path

    def ferry(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FERRY_URL": self.url, "COLUMNS": "200", "NO_COLOR": "1"}
        return subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("safe-uploads")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    process, url = start_ferry(
        ["server", "--workers", "1"],
        log=root / "server.log",
        env={**env, "FERRY_HOME": str(root / "home")},
    )
    try:
        yield Server(url, root / "home", root / "server.log")
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "MARKER"
    return malicious_files(folder / "files", marker), marker


def _upload(url: str, name: str, files: dict[str, tuple[str, bytes]]) -> httpx.Response:
    return httpx.post(f"{url}{API}/models/{name}/versions", files=files, timeout=120)


def _models(url: str) -> int:
    total: int = httpx.get(f"{url}{API}/models", timeout=10).json()["total"]
    return total


def test_malicious_pickles_are_refused_at_upload_and_never_run(
    server: Server, evil: tuple[dict[str, Path], Path]
) -> None:
    files, marker = evil
    csv = iris_frame()[0].head(5).to_csv(index=False).encode()
    for name, path in files.items():
        response = _upload(
            server.url,
            "victim",
            {"model": (path.name, path.read_bytes()), "example": ("example.csv", csv)},
        )
        assert response.status_code == 422, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "unsafe_model", (name, error)
        assert error["details"]["globals"] == ["posix.system"], name
        assert "posix.system" in error["message"]
        assert not marker.exists(), name
    assert _models(server.url) == 0
    assert not marker.exists()
    assert "unsafe model upload refused" in server.log.read_text()


def test_a_bundle_hiding_a_payload_is_refused(
    server: Server, evil: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    """A well-formed bundle (checksums right) whose model file carries the payload."""
    files, marker = evil
    frame, _ = iris_frame()
    bundle = tmp_path / "bundle"
    ferry.model.save(benign_models()["random_forest"], bundle, example=frame.drop(columns="color"))
    artifact = bundle / "model" / "model.joblib"
    artifact.write_bytes(files["after_forest_buffers.zlib.joblib"].read_bytes())
    manifest_path = bundle / MANIFEST_FILE
    manifest = yaml.safe_load(manifest_path.read_text())
    for entry in manifest["files"]:
        if entry["path"] == "model/model.joblib":
            entry["sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
            entry["size"] = artifact.stat().st_size
    manifest_path.write_text(yaml.safe_dump(manifest))
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname="bundle")
    response = _upload(server.url, "victim", {"bundle": ("bundle.tar.gz", archive.read_bytes())})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["globals"] == ["posix.system"]
    assert not marker.exists()
    assert _models(server.url) == 0


BENIGN = [
    ("pipeline", "joblib", 3),
    ("pipeline", "pkl", 5),
    ("random_forest", "joblib", 0),
    ("random_forest", "pkl", 2),
    ("gradient_boosting", "joblib", ("xz", 3)),
    ("hist_gradient_boosting", "pkl", 4),
    ("logistic_regression", "pkl", 0),
    ("xgboost", "pkl", 5),
    ("xgboost", "joblib", ("gzip", 3)),
    ("lightgbm", "joblib", 0),
    ("lightgbm", "pkl", 4),
]


def test_benign_models_pass_the_scanner_and_register(server: Server, tmp_path: Path) -> None:
    frame, _ = iris_frame()
    with Client(server.url) as client:
        for number, (name, kind, how) in enumerate(BENIGN):
            model = benign_models()[name]
            path = tmp_path / f"{name}-{number}.{kind}"
            if kind == "joblib":
                joblib.dump(model, path, compress=how)
            else:
                path.write_bytes(pickle.dumps(model, protocol=int(str(how))))
            example = frame if name == "pipeline" else frame.drop(columns="color")
            version = client.register(path, f"benign-{number}", example=example.head(10))
            assert (version.version, version.flavor, version.created) == (1, "sklearn", True)
            pulled = ferry.model.load(client.pull(f"benign-{number}", tmp_path / f"pulled{number}"))
            expected = model.predict(example.head(10))
            assert pulled.predict(example.head(10)).tolist() == expected.tolist(), name
    events = httpx.get(f"{server.url}{API}/audit", params={"limit": 1000}, timeout=10).json()
    created = [e for e in events["items"] if e["action"] == "version.create"]
    scans = [e["details"]["pickle_scan"] for e in created]
    assert len(scans) >= len(BENIGN)
    assert {s["verdict"] for s in scans} == {"passed"}


def test_trust_lets_an_unknown_import_through_and_is_audited(
    server: Server, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame, y = iris_frame()
    numbers = frame.drop(columns="color")
    model = LogisticRegression(max_iter=500).fit(numbers, y)
    model.note = fractions.Fraction(1, 3)  # harmless, but not on the allowlist
    path = tmp_path / "noted.pkl"
    path.write_bytes(pickle.dumps(model, protocol=4))
    csv = numbers.head(5).to_csv(index=False).encode()
    parts = {"model": ("noted.pkl", path.read_bytes()), "example": ("example.csv", csv)}
    refused = _upload(server.url, "noted", parts)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["globals"] == ["fractions.Fraction"]
    bad_flag = _upload(server.url, "noted", {**parts, "trust": (None, b"maybe")})  # type: ignore[dict-item]
    assert bad_flag.status_code == 400
    assert bad_flag.json()["error"]["details"]["field"] == "trust"
    trusted = _upload(server.url, "noted", {**parts, "trust": (None, b"true")})  # type: ignore[dict-item]
    assert trusted.status_code == 201, trusted.text
    events = httpx.get(f"{server.url}{API}/audit", params={"limit": 1000}, timeout=10).json()
    created = [e for e in events["items"] if e["action"] == "version.create"]
    noted = next(e for e in created if e["target"] == "noted/1")
    assert noted["details"]["trust"] is True
    assert noted["details"]["pickle_scan"]["verdict"] == "trusted"
    assert noted["details"]["pickle_scan"]["unsafe_globals"] == ["fractions.Fraction"]


def test_cli_register_and_serve_refuse_a_malicious_pickle_and_take_trust(
    server: Server, evil: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    files, marker = evil
    frame, _ = iris_frame()
    example = tmp_path / "example.csv"
    frame.drop(columns="color").head(5).to_csv(example, index=False)
    refused = server.ferry(
        "register", str(files["after_forest_buffers.joblib"]), "--name", "cli", "--example",
        str(example),
    )  # fmt: skip
    assert refused.returncode == 1
    assert "posix.system" in refused.stdout + refused.stderr
    assert "--trust" in refused.stdout + refused.stderr
    serve = server.ferry(
        "serve", str(files["after_forest_buffers.joblib"]), "--port", str(free_port())
    )
    assert serve.returncode == 1
    output = serve.stdout + serve.stderr
    assert "posix.system" in output
    assert "--trust" in output
    assert not marker.exists()
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=500).fit(frame.drop(columns="color"), iris_frame()[1])
    model.note = fractions.Fraction(2, 3)
    noted = tmp_path / "noted.pkl"
    noted.write_bytes(pickle.dumps(model))
    args = ("register", str(noted), "--name", "cli-noted", "--example", str(example))
    assert server.ferry(*args).returncode == 1
    accepted = server.ferry(*args, "--trust")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
