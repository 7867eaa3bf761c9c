"""A Terraform module that applies the Kubernetes kit through the kubernetes provider.

Each manifest of ``kits.k8s`` becomes one ``kubernetes_manifest`` resource whose ``manifest`` is
the same object written as HCL, so the two kits cannot drift apart. The image, namespace and
replica counts are variables (defaulting to this version's values); everything else is fixed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ferry.packaging.kits import k8s
from ferry.packaging.kits.target import DeployTarget, KitOptions

PROVIDER_VERSION = ">= 2.23"
TERRAFORM_VERSION = ">= 1.3"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Expr:
    """An HCL expression written as is (``var.image``), not as a string."""

    text: str


def render(target: DeployTarget, options: KitOptions) -> dict[str, str]:
    manifests = k8s.manifests(target, options)
    header = f"# {target.model} version {target.version} ({target.ref}), sha256 {target.sha256}\n"
    return {
        "versions.tf": header + _versions(),
        "variables.tf": header + _variables(target, options),
        "main.tf": header + _main(manifests),
        "outputs.tf": header + _outputs(manifests),
    }


def resource_name(stem: str) -> str:
    """``20-deployment`` -> ``deployment``."""
    return stem.split("-", 1)[1].replace("-", "_")


def _versions() -> str:
    return (
        "terraform {\n"
        f"  required_version = {hcl(TERRAFORM_VERSION)}\n"
        "  required_providers {\n"
        "    kubernetes = {\n"
        '      source  = "hashicorp/kubernetes"\n'
        f"      version = {hcl(PROVIDER_VERSION)}\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def _variables(target: DeployTarget, options: KitOptions) -> str:
    variables: list[tuple[str, str, str, object]] = [
        ("image", "string", "Container image that serves the version.", options.image_for(target)),
        ("namespace", "string", "Namespace to deploy into.", options.namespace),
        ("replicas", "number", "Replicas at least (the autoscaler's minimum).", options.replicas),
        ("max_replicas", "number", "Replicas the autoscaler may add up to.", options.max_replicas),
    ]
    blocks = [
        f'variable "{name}" {{\n'
        f"  description = {hcl(description)}\n"
        f"  type        = {kind}\n"
        f"  default     = {hcl(default)}\n"
        "}\n"
        for name, kind, description, default in variables
    ]
    return "\n".join(blocks)


def _main(manifests: list[tuple[str, k8s.Manifest]]) -> str:
    blocks = []
    created: list[str] = []
    for stem, manifest in manifests:
        name = resource_name(stem)
        body = f"  manifest = {hcl(_parametrize(manifest), 1)}\n"
        if created:
            # the namespace and config first, the deployment before what points at it
            depends = ", ".join(f"kubernetes_manifest.{other}" for other in created)
            body += f"\n  depends_on = [{depends}]\n"
        if manifest["kind"] == "Deployment":
            # the autoscaler owns the replica count once it runs
            body += '\n  computed_fields = ["spec.replicas"]\n'
        blocks.append(f'resource "kubernetes_manifest" "{name}" {{\n{body}}}\n')
        if manifest["kind"] in ("Namespace", "ConfigMap", "Deployment"):
            created.append(name)
    return "\n".join(blocks)


def _outputs(manifests: list[tuple[str, k8s.Manifest]]) -> str:
    service = next(m for _, m in manifests if m["kind"] == "Service")
    return (
        'output "service_name" {\n'
        f"  value = {hcl(service['metadata']['name'])}\n"
        "}\n\n"
        'output "namespace" {\n'
        "  value = var.namespace\n"
        "}\n\n"
        'output "image" {\n'
        "  value = var.image\n"
        "}\n"
    )


def _parametrize(manifest: k8s.Manifest) -> dict[str, Any]:
    """The manifest with the variable parts replaced by references to the module's variables."""
    copy: dict[str, Any] = json.loads(json.dumps(manifest))
    kind = copy["kind"]
    if kind == "Namespace":
        copy["metadata"]["name"] = Expr("var.namespace")
        return copy
    copy["metadata"]["namespace"] = Expr("var.namespace")
    if kind == "Deployment":
        copy["spec"]["replicas"] = Expr("var.replicas")
        copy["spec"]["template"]["spec"]["containers"][0]["image"] = Expr("var.image")
    elif kind == "HorizontalPodAutoscaler":
        copy["spec"]["minReplicas"] = Expr("var.replicas")
        copy["spec"]["maxReplicas"] = Expr("var.max_replicas")
    return copy


def hcl(value: object, depth: int = 0) -> str:
    """``value`` as an HCL expression; objects and lists indented two spaces per level."""
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, list):
        if not value:
            return "[]"
        items = "".join(f"{inner}{hcl(item, depth + 1)},\n" for item in value)
        return f"[\n{items}{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        width = max(len(_key(k)) for k in value)
        rows = "".join(
            f"{inner}{_key(k).ljust(width)} = {hcl(v, depth + 1)}\n" for k, v in value.items()
        )
        return f"{{\n{rows}{pad}}}"
    raise TypeError(f"no HCL form for {type(value).__name__}")


def _key(key: object) -> str:
    text = str(key)
    return text if _IDENTIFIER.match(text) else _string(text)


def _string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("${", "$${")
        .replace("%{", "%%{")
    )
    return f'"{escaped}"'
