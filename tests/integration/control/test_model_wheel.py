"""``ferry package wheel``: built from a real ``ferry server``, published to a real local
pypiserver (with passwords), installed by pip from that index into a fresh venv without Ferry,
where ``predict`` gives the registered version's expected output."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ferry.model.example import compare_outputs
from tests.integration.conftest import free_port, stop_server
from tests.integration.control.conftest import ControlServer
from tests.registry_fixtures import unavailable

pytestmark = pytest.mark.integration

USER, PASSWORD = "publisher", "index-secret-1"


@dataclass(frozen=True)
class PackageIndex:
    url: str  # upload URL (twine's repository URL)
    simple: str  # what pip reads
    packages: Path


@pytest.fixture
def package_index(tmp_path: Path) -> Iterator[PackageIndex]:
    """pypiserver on a free loopback port; uploads need USER/PASSWORD."""
    executable = Path(sys.executable).with_name("pypi-server")
    if not executable.exists():
        unavailable("pypiserver is not installed in the venv (pip install -e '.[dev]')")
    # Apache's {SHA} htpasswd line, which pypiserver's passlib reads
    sha = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()  # noqa: S324
    (tmp_path / "htpasswd").write_text(f"{USER}:{{SHA}}{sha}\n")
    packages = tmp_path / "packages"
    packages.mkdir()
    port = free_port()
    log = tmp_path / "pypiserver.log"
    command = [str(executable), "run", "-p", str(port), "-i", "127.0.0.1"]
    command += ["-P", str(tmp_path / "htpasswd"), "-a", "update", str(packages)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"pypiserver exited: {log.read_text()}")
            try:
                if httpx.get(f"{base}/simple/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"pypiserver did not start: {log.read_text()}")
            time.sleep(0.1)
        yield PackageIndex(f"{base}/", f"{base}/simple/", packages)
    finally:
        stop_server(process)


def publish(
    server: ControlServer, index: PackageIndex, out: Path, password: str
) -> subprocess.CompletedProcess[str]:
    env = {"TWINE_USERNAME": USER, "TWINE_PASSWORD": password}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return server.ferry(
            "package", "wheel", "iris@production", "--out", str(out), "--upload", index.url
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_wheel_published_and_installed_from_a_private_index(
    control_server: ControlServer, package_index: PackageIndex, iris_bundle: Path, tmp_path: Path
) -> None:
    registered = control_server.ferry(
        "register", str(iris_bundle), "--name", "iris", "--alias", "production"
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    dist = tmp_path / "dist"

    refused = publish(control_server, package_index, dist, "wrong-password")
    assert refused.returncode == 1
    assert "package index" in refused.stdout + refused.stderr
    assert not list(package_index.packages.iterdir())

    result = publish(control_server, package_index, dist, PASSWORD)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == "ferry_model_iris-1-py3-none-any.whl"
    assert [p.name for p in package_index.packages.iterdir()] == [wheel.name]
    assert (package_index.packages / wheel.name).read_bytes() == wheel.read_bytes()

    again = publish(control_server, package_index, tmp_path / "again", PASSWORD)
    assert again.returncode == 1
    assert (tmp_path / "again" / wheel.name).read_bytes() == wheel.read_bytes()  # deterministic

    # a fresh venv, nothing of Ferry in it: pip finds the model on the private index
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)  # noqa: S603
    python = venv / "bin" / "python"
    install = subprocess.run(  # noqa: S603
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--index-url",
            package_index.simple,
            "ferry-model-iris==1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    example = json.loads((iris_bundle / "example.json").read_text())
    rows = [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]
    script = (
        "import importlib.util, json, sys\n"
        "assert importlib.util.find_spec('ferry') is None, 'ferry-ml must not be installed'\n"
        "import ferry_model_iris as m\n"
        "rows = json.loads(sys.stdin.read())\n"
        "print(json.dumps({'name': m.NAME, 'version': m.VERSION, 'sha256': m.SHA256,\n"
        "  'predictions': m.predict(rows), 'probabilities': m.predict_proba(rows),\n"
        "  'columns': m.load().columns}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    run = subprocess.run(  # noqa: S603
        [str(python), "-c", script],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    expected = json.loads((iris_bundle / "expected.json").read_text())
    assert compare_outputs(expected, answer) == []
    assert answer["predictions"] == expected["predictions"]
    version = json.loads(
        control_server.ferry("versions", "show", "iris@production", "--json").stdout
    )
    assert (answer["name"], answer["version"], answer["sha256"]) == ("iris", 1, version["sha256"])
    assert answer["columns"] == example["columns"]
