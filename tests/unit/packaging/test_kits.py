"""Deploy kits rendered from a version registered in a real (SQLite + folder) registry, checked
with the tools a platform team would use offline: kubernetes-validate --strict, the compose-spec,
GitHub and CircleCI JSON schemas shipped in check-jsonschema, python-hcl2, tomllib."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from ferry.errors import ConfigError
from ferry.monitoring.alerts import (
    DASHBOARD_FILE,
    RULES_FILE,
    AlertLimits,
    alert_rules_text,
    dashboard_json,
    export_monitoring,
)
from ferry.packaging.kits import KITS, DeployTarget, KitOptions, render_kit
from ferry.packaging.kits import k8s as k8s_kit
from ferry.packaging.kits.compose import DATASOURCE_UID
from ferry.packaging.kits.target import MonitoringFiles, from_record, write_kit
from ferry.registry import Registry

BIN = Path(sys.executable).parent
# what `ferry deploy compose` passes: the dashboard and rules of `ferry monitoring export`
MONITORING = MonitoringFiles(dashboard_json(), alert_rules_text(AlertLimits()))
TLS = KitOptions(ingress_host="iris.example.com", tls_secret="iris-tls", monitoring=MONITORING)


@pytest.fixture
def target(tmp_path: Path, iris_bundle: Path) -> Iterator[DeployTarget]:
    with Registry.open(f"sqlite:///{tmp_path / 'ferry.db'}", str(tmp_path / "artifacts")) as reg:
        reg.register(iris_bundle, "iris")
        reg.set_alias("iris", "production", 1)
        yield from_record(reg.resolve("iris@production"), "iris@production")


def tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    executable = BIN / name
    assert executable.exists(), f"{name} is not installed in the venv (pip install -e '.[dev]')"
    return subprocess.run(  # noqa: S603 - a dev tool from our venv
        [str(executable), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def written(kit: str, target: DeployTarget, options: KitOptions, out: Path) -> Path:
    write_kit(render_kit(kit, target, options), out)
    return out


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("kit", sorted(KITS))
def test_kits_are_deterministic(kit: str, target: DeployTarget, tmp_path: Path) -> None:
    one = written(kit, target, TLS, tmp_path / "one")
    two = written(kit, target, TLS, tmp_path / "two")
    assert digest(one) == digest(two)
    # writing the same kit again over itself is allowed; other content is not, unless forced
    write_kit(render_kit(kit, target, TLS), one)
    first = sorted(p for p in one.rglob("*") if p.is_file())[0]
    first.write_text("edited by hand\n")
    with pytest.raises(ConfigError, match="exist with other content"):
        write_kit(render_kit(kit, target, TLS), one)
    assert first.read_text() == "edited by hand\n"
    write_kit(render_kit(kit, target, TLS), one, force=True)
    assert digest(one) == digest(two)


def test_k8s_manifests_pass_strict_schema_validation(target: DeployTarget, tmp_path: Path) -> None:
    out = written("k8s", target, TLS, tmp_path / "k8s")
    manifests = sorted(out.glob("*.yaml"))
    assert [p.stem for p in manifests] == [
        "00-namespace",
        "10-configmap",
        "20-deployment",
        "30-service",
        "40-hpa",
        "50-pdb",
        "60-networkpolicy",
        "70-ingress",
    ]
    result = tool("kubernetes-validate", "--strict", *manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(manifests)
    # the validator does reject what the API server would: an unknown field under strict
    broken = yaml.safe_load((out / "20-deployment.yaml").read_text())
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert tool("kubernetes-validate", "--strict", tmp_path / "broken.yaml").returncode != 0


def test_deployment_carries_the_versions_values(target: DeployTarget, tmp_path: Path) -> None:
    out = written("k8s", target, TLS, tmp_path / "k8s")
    deployment = yaml.safe_load((out / "20-deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"ferry-model-iris:{target.version}" == "ferry-model-iris:1"
    assert container["command"][:3] == ["ferry", "serve", "/model"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]
    assert container["resources"]["requests"]
    security = container["securityContext"]
    assert security["runAsNonRoot"]
    assert security["readOnlyRootFilesystem"]
    assert not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert deployment["metadata"]["annotations"]["ferry.dev/sha256"] == target.sha256
    # the ConfigMap holds the registry's record of the version
    config = yaml.safe_load((out / "10-configmap.yaml").read_text())
    facts = json.loads(config["data"]["model.json"])
    assert facts["requirements"] == list(target.requirements) != []
    assert facts["signature"] == target.signature.model_dump(mode="json")
    assert [c["name"] for c in facts["signature"]["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    hpa = yaml.safe_load((out / "40-hpa.yaml").read_text())
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    ingress = yaml.safe_load((out / "70-ingress.yaml").read_text())
    assert ingress["spec"]["tls"] == [{"hosts": ["iris.example.com"], "secretName": "iris-tls"}]


def test_k8s_options(target: DeployTarget) -> None:
    files = render_kit("k8s", target, KitOptions(image="registry.local/iris@sha256:" + "a" * 64))
    assert "70-ingress.yaml" not in files
    deployment = yaml.safe_load(files["20-deployment.yaml"])
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "registry.local/iris@sha256:"
    )
    # a pinned digest needs no digest check skipped
    assert "CKV_K8S_43" not in json.dumps(deployment["metadata"]["annotations"])
    with pytest.raises(ConfigError, match="--tls-secret needs --ingress-host") as info:
        render_kit("k8s", target, KitOptions(tls_secret="x"))
    assert info.value.details["field"] == "tls_secret"
    with pytest.raises(ConfigError, match="namespace"):
        render_kit("k8s", target, KitOptions(namespace="Not_A_Name"))
    with pytest.raises(ConfigError, match="no deploy kit 'helm'"):
        render_kit("helm", target, KitOptions())


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes: ``'"ferry"'`` -> ``ferry``; ``${var.x}`` stays."""
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value).replace("$${", "${").replace("%%{", "%{")
    return value


def test_terraform_module_parses_and_matches_the_manifests(
    target: DeployTarget, tmp_path: Path
) -> None:
    out = written("terraform", target, TLS, tmp_path / "tf")
    parsed = {p.name: _unquote(hcl2.loads(p.read_text())) for p in sorted(out.glob("*.tf"))}
    assert sorted(parsed) == ["main.tf", "outputs.tf", "variables.tf", "versions.tf"]
    provider = parsed["versions.tf"]["terraform"][0]["required_providers"][0]["kubernetes"]
    assert provider["source"] == "hashicorp/kubernetes"
    variables = {k: v for block in parsed["variables.tf"]["variable"] for k, v in block.items()}
    assert variables["image"]["default"] == "ferry-model-iris:1"
    assert variables["namespace"]["default"] == "ferry"
    resources = {
        name: body
        for block in parsed["main.tf"]["resource"]
        for kind, named in block.items()
        for name, body in named.items()
        if kind == "kubernetes_manifest"
    }
    expected = {stem.split("-", 1)[1]: m for stem, m in k8s_kit.manifests(target, TLS)}
    assert sorted(resources) == sorted(
        [
            "namespace",
            "configmap",
            "deployment",
            "service",
            "hpa",
            "pdb",
            "networkpolicy",
            "ingress",
        ]
    )
    deployment = resources["deployment"]["manifest"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "${var.image}"
    assert deployment["spec"]["replicas"] == "${var.replicas}"
    assert deployment["metadata"]["namespace"] == "${var.namespace}"
    # apart from the variables, the module applies exactly the k8s kit's objects
    for name, manifest in expected.items():
        got = json.loads(
            json.dumps(resources[name]["manifest"])
            .replace('"${var.image}"', '"ferry-model-iris:1"')
            .replace('"${var.namespace}"', '"ferry"')
            .replace('"${var.replicas}"', "2")
            .replace('"${var.max_replicas}"', "10")
        )
        assert got == manifest, name
    assert "depends_on" in resources["deployment"]


def test_compose_file_passes_the_compose_spec(target: DeployTarget, tmp_path: Path) -> None:
    out = written("compose", target, KitOptions(monitoring=MONITORING), tmp_path / "compose")
    result = tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", out / "compose.yaml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    project = yaml.safe_load((out / "compose.yaml").read_text())
    services = project["services"]
    assert {"ferry", "model", "postgres", "minio", "minio-init", "prometheus", "grafana"} <= set(
        services
    )
    assert services["model"]["image"] == "ferry-model-iris:1"
    assert services["model"]["labels"]["dev.ferry.sha256"] == target.sha256
    # what `docker compose config` checks beyond the schema: references resolve
    for name, service in services.items():
        depends = service.get("depends_on", [])
        assert set(depends) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (out / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in project["volumes"], f"{name} uses undeclared volume {source}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # Prometheus scrapes both Ferry servers; Grafana reads the dashboard from where it is mounted
    scrape = yaml.safe_load((out / "prometheus/prometheus.yml").read_text())
    targets = {
        t.split(":")[0]
        for job in scrape["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    assert targets == {"ferry", "model"}
    provider = yaml.safe_load((out / "grafana/provisioning/dashboards/ferry.yaml").read_text())
    mounted = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    assert mounted["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    source = yaml.safe_load((out / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    board = json.loads((out / "grafana/dashboards/ferry.json").read_text())
    # the dashboard asks its $datasource variable (any Prometheus, the default first): the
    # provisioned source is that default
    uids = {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    assert uids == {"${datasource}"}
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource"
    [provisioned] = source["datasources"]
    assert variable["query"] == provisioned["type"] == "prometheus"
    assert provisioned["isDefault"] is True
    assert provisioned["uid"] == DATASOURCE_UID
    # an invalid compose file is rejected by the same check
    services["model"]["restart"] = ["always"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(project))
    assert (
        tool(
            "check-jsonschema", "--builtin-schema", "vendor.compose-spec", tmp_path / "bad.yaml"
        ).returncode
        != 0
    )


def test_compose_provisions_the_monitoring_dashboard_and_alert_rules(
    target: DeployTarget, tmp_path: Path
) -> None:
    """Grafana and Prometheus get exactly what `ferry monitoring export` writes, mounted where
    their configuration looks; without them the kit is refused, naming the option."""
    out = written("compose", target, KitOptions(monitoring=MONITORING), tmp_path / "compose")
    exported = export_monitoring(tmp_path / "export", AlertLimits())
    by_name = {path.name: path.read_text() for path in exported}
    assert (out / "grafana/dashboards/ferry.json").read_text() == by_name[DASHBOARD_FILE]
    assert (out / "prometheus/rules/ferry-alerts.yml").read_text() == by_name[RULES_FILE]
    project = yaml.safe_load((out / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in project["services"]["prometheus"]["volumes"])
    [pattern] = yaml.safe_load((out / "prometheus/prometheus.yml").read_text())["rule_files"]
    rules_dir = mounts["./prometheus/rules"]
    assert pattern == f"{rules_dir}/*.yml"
    assert fnmatch.fnmatch(f"{rules_dir}/ferry-alerts.yml", pattern)
    with pytest.raises(ConfigError, match="monitoring"):
        render_kit("compose", target, KitOptions())


def test_paas_files(target: DeployTarget, tmp_path: Path) -> None:
    out = written("paas", target, KitOptions(port=8080), tmp_path / "paas")
    fly = tomllib.loads((out / "fly.toml").read_text())
    assert fly["build"]["image"] == "ferry-model-iris:1"
    assert fly["env"]["PORT"] == "8080"
    assert fly["http_service"]["internal_port"] == 8080
    assert fly["http_service"]["checks"][0]["path"] == "/readyz"
    render = yaml.safe_load((out / "render.yaml").read_text())["services"][0]
    assert render["image"]["url"] == "ferry-model-iris:1"
    assert render["healthCheckPath"] == "/readyz"
    assert {"key": "PORT", "value": "8080"} in render["envVars"]
    railway = json.loads((out / "railway.json").read_text())
    assert railway["deploy"]["healthcheckPath"] == "/readyz"
    assert (out / "Procfile").read_text().startswith("web: ferry serve bundle ")
    assert "$" + "{PORT:-8080}" in (out / "Procfile").read_text()
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert requirements[0].startswith("ferry-ml==")
    assert requirements[1:] == list(target.requirements)


@pytest.mark.parametrize(
    ("provider", "schema"),
    [("github", "vendor.github-workflows"), ("circleci", "vendor.circle-ci")],
)
def test_ci_pipelines_pass_their_schemas(
    provider: str, schema: str, target: DeployTarget, tmp_path: Path
) -> None:
    out = written("ci", target, KitOptions(provider=provider), tmp_path / provider)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 1
    result = tool("check-jsonschema", "--builtin-schema", schema, files[0])
    assert result.returncode == 0, result.stdout + result.stderr
    text = files[0].read_text()
    for command in (
        "python train.py",
        "ferry check",
        "ferry register bundle --name iris",
        "ferry package wheel iris@candidate",
        "ferry build iris@candidate",
    ):
        assert command in text, command
    for requirement in target.requirements:
        assert requirement in text
    # every script is valid shell
    config = yaml.safe_load(text)
    scripts = (
        [s["run"] for s in config["jobs"]["model"]["steps"] if "run" in s]
        if provider == "github"
        else _circle_scripts(config["jobs"]["model"]["steps"])
    )
    assert len(scripts) == 6
    for script in scripts:
        check = subprocess.run(
            ["bash", "-n"], input=script, text=True, capture_output=True, check=False
        )  # noqa: S607
        assert check.returncode == 0, (script, check.stderr)


def _circle_scripts(steps: list[Any]) -> list[str]:
    scripts = []
    for step in steps:
        if isinstance(step, dict) and "run" in step:
            scripts.append(step["run"]["command"])
        elif isinstance(step, dict) and "when" in step:
            scripts += _circle_scripts(step["when"]["steps"])
    return scripts


def test_unknown_ci_provider(target: DeployTarget) -> None:
    with pytest.raises(ConfigError, match="no CI provider 'jenkins'"):
        render_kit("ci", target, KitOptions(provider="jenkins"))
