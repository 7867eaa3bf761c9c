"""Acceptance: a real iris image built on the local base, served by podman on a loopback
port, answering like the model; its token-free layers; export to an OCI archive and back."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ferry.cli.main import app
from ferry.model.manifest import read_manifest
from tests.integration.conftest import free_port
from tests.integration.packaging.conftest import (
    EXTRA_REQUIREMENT,
    SESSION,
    TAG,
    TOKEN,
    IrisImage,
)
from tests.integration.packaging.conftest import basic_auth_token as decoded
from tests.registry_fixtures import unavailable

pytestmark = pytest.mark.integration
runner = CliRunner()
SIZE_LIMIT = 350 * 1000 * 1000


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def served(iris_image: IrisImage) -> Iterator[str]:
    """The image running under podman, as a deployment would run it, on a free port."""
    port = free_port()
    name = f"ferry-test-iris-{port}"
    podman(
        "run", "--detach", "--rm", "--init", "--name", name, "--network", "host",
        "--env", f"PORT={port}", TAG,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                pytest.fail(f"the container never became ready:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.3)
        yield base
    finally:
        podman("stop", "--time", "5", name, check=False)


def test_build_ends_with_a_smoke_test_and_reports_its_size(iris_image: IrisImage) -> None:
    built = iris_image.built
    assert built.image == TAG
    assert "smoke test passed" in built.smoke
    assert any("ferry.packaging.smoke" in line for line in iris_image.build_log)
    print(f"\niris image size: {built.size / 1e6:.1f} MB (limit {SIZE_LIMIT / 1e6:.0f} MB)")
    assert 0 < built.size <= SIZE_LIMIT  # issue 4's target, as podman reports it (uncompressed)


def test_image_serves_correct_predictions(
    served: str, image_bundle: Path, iris_image: IrisImage
) -> None:
    ready = httpx.get(f"{served}/readyz", timeout=5)
    assert ready.status_code == 200
    manifest = read_manifest(image_bundle)
    assert manifest.example is not None
    assert manifest.expected_output is not None
    split = orjson.loads((image_bundle / manifest.example).read_bytes())
    expected = orjson.loads((image_bundle / manifest.expected_output).read_bytes())
    rows = [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
    answer = httpx.post(f"{served}/v1/models/iris/predict", json={"instances": rows}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected["predictions"]
    # MLflow's protocol on the same container
    mlflow = httpx.post(f"{served}/invocations", json={"dataframe_split": split}, timeout=10)
    assert mlflow.status_code == 200, mlflow.text
    assert mlflow.json()["predictions"] == expected["predictions"]


def test_image_metadata(iris_image: IrisImage, image_bundle: Path) -> None:
    inspect = orjson.loads(podman("image", "inspect", TAG).stdout)[0]
    config = inspect["Config"]
    labels = config["Labels"]
    assert labels["ai.ferry.model.name"] == "iris"
    assert labels["ai.ferry.model.version"] == "1"
    assert len(labels["ai.ferry.model.sha256"]) == 64
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    health_format = "{{json .HealthCheck}}"
    health = orjson.loads(podman("image", "inspect", "--format", health_format, TAG).stdout)
    assert "/readyz" in " ".join(health["Test"])
    # the version's extra requirement is installed; no compilers or pip caches came along
    script = (
        'python -c \'import importlib.metadata as m; print("Version: " + m.version("tabulate"))\';'
        " command -v gcc cc || echo no-compiler; ls /root/.cache 2>/dev/null || echo no-cache;"
        " python -c 'import pip' 2>/dev/null || echo no-pip"
    )
    probe = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", TAG, "-c", script,
    )  # fmt: skip
    assert f"Version: {EXTRA_REQUIREMENT.split('==')[1]}" in probe.stdout
    assert "no-compiler" in probe.stdout
    assert "no-cache" in probe.stdout
    assert "no-pip" in probe.stdout


def test_image_holds_bytecode_only_for_what_serving_imports(iris_image: IrisImage) -> None:
    """The build's warm-up compiled what `ferry serve` imports (root's files, read-only to the
    serving user); what serving never imports has none; Debian's package tooling is gone."""
    script = """
import importlib.util, os, sys
def cached(name):
    return importlib.util.find_spec(name).cached
for name in ("fastapi", "uvicorn.main", "sklearn.linear_model", "json"):
    path = cached(name)
    st = os.stat(path)
    print(name, "pyc", st.st_uid, oct(st.st_mode & 0o777), os.access(path, os.W_OK),
          os.access(os.path.dirname(path), os.W_OK))
for name in ("pandas.io.formats.style", "ferry.registry.metadata.sql", "smtplib"):
    print(name, "pyc" if os.path.exists(cached(name)) else "source-only")
print("sqlalchemy", importlib.util.find_spec("sqlalchemy"))
for tool in ("apt-get", "dpkg", "perl", "useradd"):
    print(tool, any(os.path.exists(os.path.join(d, tool)) for d in os.environ["PATH"].split(":")))
"""
    probe = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "python", TAG, "-c", script,
    )  # fmt: skip
    lines = probe.stdout.splitlines()
    for name in ("fastapi", "uvicorn.main", "sklearn.linear_model", "json"):
        assert f"{name} pyc 0 0o644 False False" in lines, probe.stdout
    for name in ("pandas.io.formats.style", "ferry.registry.metadata.sql", "smtplib"):
        assert f"{name} source-only" in lines, probe.stdout
    assert "sqlalchemy None" in lines
    for tool in ("apt-get", "dpkg", "perl", "useradd"):
        assert f"{tool} False" in lines, probe.stdout


def test_private_index_token_is_used_but_never_stored(
    iris_image: IrisImage, tmp_path: Path
) -> None:
    # pip inside the build asked the private index, with the token from the build secret...
    assert any(TOKEN in decoded(header) for header in iris_image.index.authorizations), (
        iris_image.index.paths
    )
    # ...which appears nowhere in the image: not in a layer, the config or the history
    archive = tmp_path / "image.tar"
    podman("save", "--format", "docker-archive", "--output", str(archive), TAG)
    assert archive.stat().st_size > 10_000_000
    data = archive.read_bytes()
    assert TOKEN.encode() not in data
    history = podman("history", "--no-trunc", TAG).stdout
    assert TOKEN not in history
    assert all(TOKEN not in line for line in iris_image.build_log)  # masked in the log too


def test_export_and_import_round_trip(
    iris_image: IrisImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.config.settings import get_settings

    monkeypatch.setenv("FERRY_HOME", str(iris_image.home))
    monkeypatch.delenv("FERRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("FERRY_ARTIFACTS", raising=False)
    get_settings.cache_clear()
    archive = tmp_path / "iris.tar"
    try:
        exported = runner.invoke(
            app, ["export", "iris@production", str(archive), "--tag", TAG, "--to-store"]
        )
        assert exported.exit_code == 0, exported.output
        assert archive.stat().st_size > 10_000_000
        stored = list((iris_image.home / "artifacts").rglob("*.oci.tar"))
        assert stored
        assert stored[0].stat().st_size == archive.stat().st_size
        labels = "{{json .Labels}}"
        before = orjson.loads(podman("image", "inspect", "--format", labels, TAG).stdout)
        podman("rmi", "--force", TAG)
        assert podman("image", "exists", TAG, check=False).returncode == 1
        imported = runner.invoke(app, ["import", str(archive)])
        assert imported.exit_code == 0, imported.output
        assert TAG in imported.output
        after = orjson.loads(podman("image", "inspect", "--format", labels, TAG).stdout)
        assert after == before
        smoke = podman(
            "run", "--rm", "--network", "none", "--entrypoint", "python", TAG,
            "-m", "ferry.packaging.smoke", "/model",
        )  # fmt: skip
        assert "smoke test passed" in smoke.stdout
    finally:
        get_settings.cache_clear()


def test_buildah_builds_the_same_context(
    iris_image: IrisImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buildah builder: build (shares podman's layer cache), smoke test via buildah run,
    and its OCI archive round trip."""
    from ferry.config.settings import get_settings
    from ferry.packaging.builders import choose_builder
    from ferry.packaging.images import export_image, import_image

    if shutil.which("buildah") is None:
        unavailable("buildah is not installed (make test runs scripts/setup-containers.sh)")
    monkeypatch.setenv("FERRY_HOME", str(iris_image.home))
    monkeypatch.delenv("FERRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("FERRY_ARTIFACTS", raising=False)
    get_settings.cache_clear()
    tag = f"localhost/ferry-test/iris:buildah-{SESSION}"
    try:
        built = runner.invoke(
            app, ["build", "iris@production", "--builder", "buildah", "--tag", tag]
        )
        assert built.exit_code == 0, built.output
        assert "smoke test passed" in built.output
        builder = choose_builder("buildah")
        assert builder.image_size(tag) > 0
        archive = tmp_path / "buildah.tar"
        export_image(builder, tag, archive, lambda line: None)
        podman("rmi", "--force", tag)
        assert import_image(builder, archive, lambda line: None) == tag
        assert builder.image_exists(tag)
    finally:
        get_settings.cache_clear()
        podman("rmi", "--force", tag, check=False)
