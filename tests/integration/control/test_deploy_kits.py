"""``ferry deploy`` against a real ``ferry server``: each kit from the registry's values, a
checkov policy scan of the Kubernetes kit, and the PaaS contract (the server honours $PORT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from ferry.cli.deploy import monitoring_files
from ferry.model.manifest import read_manifest
from ferry.packaging.kits import KitOptions, render_kit
from ferry.packaging.kits.target import DeployTarget, from_record
from ferry.registry import Registry
from tests.integration.conftest import free_port, stop_server, wait_ready
from tests.integration.control.conftest import ControlServer
from tests.registry_fixtures import unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
# each check the generated Deployment skips, and why (the reason is in its annotation)
DOCUMENTED_SKIPS = {"CKV_K8S_15", "CKV_K8S_43"}


@pytest.fixture
def iris_server(control_server: ControlServer, iris_bundle: Path) -> ControlServer:
    result = control_server.ferry(
        "register", str(iris_bundle), "--name", "iris", "--alias", "production"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return control_server


def registry_target(server: ControlServer, ref: str) -> DeployTarget:
    """The same version read straight from the server's registry (its FERRY_HOME)."""
    home = server.home
    with Registry.open(
        f"sqlite:///{home / 'ferry.db'}", str(home / "artifacts"), migrate=False
    ) as registry:
        return from_record(registry.resolve(ref), ref)


@pytest.mark.parametrize("kit", ["compose", "k8s", "terraform", "paas"])
def test_deploy_writes_the_kit_of_the_registered_version(
    kit: str, iris_server: ControlServer, tmp_path: Path
) -> None:
    out = tmp_path / kit
    args = ["deploy", kit, "iris@production", "--out", str(out)]
    if kit in ("k8s", "terraform"):
        args += ["--ingress-host", "iris.example.com", "--tls-secret", "iris-tls"]
    result = iris_server.ferry(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{kit} kit for iris version 1 (iris@production)" in result.stdout
    # byte for byte what the kit renders from the registry's own record
    options = {
        "k8s": KitOptions(ingress_host="iris.example.com", tls_secret="iris-tls"),
        "terraform": KitOptions(ingress_host="iris.example.com", tls_secret="iris-tls"),
        "paas": KitOptions(replicas=1),  # one instance unless told otherwise
        "compose": KitOptions(monitoring=monitoring_files()),  # `ferry monitoring export`'s
    }[kit]
    expected = render_kit(kit, registry_target(iris_server, "iris@production"), options)
    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert files == expected
    # running it again changes nothing; other content is refused with a clear message
    assert iris_server.ferry(*args).returncode == 0
    first = out / sorted(files)[0]
    first.write_text("mine\n")
    refused = iris_server.ferry(*args)
    assert refused.returncode == 1
    assert "use --force" in refused.stdout + refused.stderr
    assert iris_server.ferry(*args, "--force").returncode == 0


def test_deploy_ci_and_errors(iris_server: ControlServer, tmp_path: Path) -> None:
    result = iris_server.ferry(
        "deploy", "ci", "iris", "--provider", "circleci", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((tmp_path / ".circleci" / "config.yml").read_text())
    assert config["version"] == 2.1
    missing = iris_server.ferry("deploy", "k8s", "iris@staging", "--out", str(tmp_path / "x"))
    assert missing.returncode == 1
    assert "staging" in missing.stdout + missing.stderr
    assert not (tmp_path / "x").exists()
    unknown = iris_server.ferry("deploy", "ci", "iris", "--provider", "jenkins")
    assert unknown.returncode == 1
    assert "no CI provider 'jenkins'" in unknown.stdout + unknown.stderr
    tls = iris_server.ferry(
        "deploy", "k8s", "iris", "--tls-secret", "s", "--out", str(tmp_path / "y")
    )
    assert tls.returncode == 1
    assert "--tls-secret needs --ingress-host" in tls.stdout + tls.stderr


def test_checkov_finds_no_failed_check_in_the_k8s_kit(
    iris_server: ControlServer, tmp_path: Path
) -> None:
    if not CHECKOV.exists():
        unavailable(f"checkov is not installed at {CHECKOV} (make test installs it)")
    out = tmp_path / "k8s"
    args = [
        "deploy",
        "k8s",
        "iris@production",
        "--out",
        str(out),
        "--ingress-host",
        "iris.example.com",
    ]
    assert iris_server.ferry(*args, "--tls-secret", "iris-tls").returncode == 0
    scan = subprocess.run(  # noqa: S603 - checkov from its own venv
        [
            str(CHECKOV),
            "-d",
            str(out),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # offline: no Bridgecrew platform, no guideline download
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report = json.loads(scan.stdout)
    reports = report if isinstance(report, list) else [report]
    (kubernetes,) = [r for r in reports if r["check_type"] == "kubernetes"]
    results = kubernetes["results"]
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in results["failed_checks"]]
    assert failed == []
    assert kubernetes["summary"]["passed"] >= 50
    assert kubernetes["summary"]["resource_count"] == 9
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert skipped == DOCUMENTED_SKIPS
    annotations = yaml.safe_load((out / "20-deployment.yaml").read_text())["metadata"][
        "annotations"
    ]
    reasons = [v for k, v in annotations.items() if k.startswith("checkov.io/skip")]
    assert {r.split("=", 1)[0] for r in reasons} == DOCUMENTED_SKIPS
    assert all(len(r.split("=", 1)[1]) > 30 for r in reasons)
    deployment_checks = [
        c for c in results["passed_checks"] if c["resource"].startswith("Deployment.")
    ]
    assert len(deployment_checks) >= 30


def test_serve_honours_port_like_a_paas(iris_bundle: Path, tmp_path: Path) -> None:
    """The Procfile line of the paas kit, run by a shell with $PORT set, as a platform does."""
    from ferry.packaging.kits.paas import render

    signature = read_manifest(iris_bundle).signature
    target = DeployTarget("iris", 1, "0" * 64, "sklearn", signature, (), 0, "iris/1")
    procfile = render(target, KitOptions(bundle_dir=str(iris_bundle)))["Procfile"]
    command = procfile.removeprefix("web: ").strip()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the kit's own command line
            ["/bin/sh", "-c", f"exec {command.replace('0.0.0.0', '127.0.0.1')}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        stop_server(process)
    # and with no --port at all, `ferry serve` takes $PORT (the image's default command)
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", "serve", str(iris_bundle)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PORT": str(port)},
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
    finally:
        stop_server(process)
