"""What a deploy kit is rendered from: one registered version's real values plus the options.

A kit never reads a clock, a random source or the environment, so the same version and options
always give byte-identical files (tests hash two renders).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferry.errors import ConfigError
from ferry.model.signature import Signature
from ferry.registry.records import VersionRecord

DEFAULT_PORT = 8000
# Kubernetes names and label values: at most 63 lowercase letters, digits and '-'
_DNS_MAX = 63
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class DeployTarget:
    """One registered version, as a kit needs it."""

    model: str
    version: int
    sha256: str
    flavor: str
    signature: Signature
    requirements: tuple[str, ...]
    size: int
    ref: str  # what the user asked for, e.g. iris@production (kept in comments and labels)

    @property
    def slug(self) -> str:
        """The model name as a Kubernetes/compose-safe name (``My_Model.v2`` -> ``my-model-v2``)."""
        return dns_name(self.model)

    @property
    def default_image(self) -> str:
        return f"ferry-model-{self.model.lower()}:{self.version}"

    def facts(self) -> dict[str, Any]:
        """The version's identity as JSON-ready data (ConfigMaps, labels, comments)."""
        return {
            "model": self.model,
            "version": self.version,
            "ref": self.ref,
            "sha256": self.sha256,
            "flavor": self.flavor,
            "size": self.size,
            "requirements": list(self.requirements),
            "signature": self.signature.model_dump(mode="json"),
        }


@dataclass(frozen=True, slots=True)
class MonitoringFiles:
    """What a kit provisions Prometheus and Grafana with: the dashboard and alert rules that
    ``ferry monitoring export`` writes. The caller (the CLI) makes them with the monitoring
    layer and passes them in: packaging never imports monitoring."""

    dashboard: str  # Grafana dashboard JSON
    alert_rules: str  # Prometheus rule file (YAML)


@dataclass(frozen=True, slots=True)
class KitOptions:
    """Choices that are not the version's: where and how it runs. Defaults suit a small model."""

    image: str | None = None  # default: DeployTarget.default_image
    port: int = DEFAULT_PORT
    namespace: str = "ferry"
    replicas: int = 2
    max_replicas: int = 10
    target_cpu_percent: int = 70
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "256Mi"
    memory_limit: str = "1Gi"
    workers: int = 1
    ingress_host: str | None = None
    tls_secret: str | None = None
    provider: str = "github"  # ci kit: github or circleci
    train_command: str = "python train.py"
    bundle_dir: str = "bundle"
    extra: Mapping[str, str] = field(default_factory=dict)
    monitoring: MonitoringFiles | None = None  # the compose kit's dashboard and alert rules

    def image_for(self, target: DeployTarget) -> str:
        return self.image or target.default_image

    def check(self) -> KitOptions:
        """Reject values no platform would accept, naming the option."""
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not between 1 and 65535", field="port")
        if self.replicas < 1 or self.max_replicas < self.replicas:
            raise ConfigError(
                f"replicas must be >= 1 and max_replicas >= replicas, got {self.replicas} and "
                f"{self.max_replicas}",
                field="replicas",
            )
        if not 1 <= self.target_cpu_percent <= 100:
            raise ConfigError("target_cpu_percent must be 1-100", field="target_cpu_percent")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1", field="workers")
        if self.namespace != dns_name(self.namespace):
            raise ConfigError(
                f"namespace {self.namespace!r} is not a Kubernetes name (lowercase letters, "
                "digits and '-')",
                field="namespace",
            )
        if self.tls_secret and not self.ingress_host:
            raise ConfigError("--tls-secret needs --ingress-host", field="tls_secret")
        if self.image is not None and (not self.image or any(c.isspace() for c in self.image)):
            raise ConfigError(f"image {self.image!r} is not an image reference", field="image")
        return self


def from_record(record: VersionRecord, ref: str | None = None) -> DeployTarget:
    """A target from the registry's own record (``Registry.resolve``)."""
    return DeployTarget(
        model=record.model,
        version=record.version,
        sha256=record.sha256,
        flavor=record.flavor,
        signature=record.signature,
        requirements=tuple(record.requirements),
        size=record.size,
        ref=ref or record.ref,
    )


def dns_name(value: str, max_length: int = _DNS_MAX) -> str:
    """Lowercase letters, digits and '-'; long names keep a hash so they stay distinct."""
    name = _NOT_DNS.sub("-", value.lower()).strip("-") or "model"
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-')}-{digest}"


class _PlainDumper(yaml.SafeDumper):
    """Writes a value shared by two places twice instead of as a YAML anchor and alias."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # scripts and embedded files read best as literal blocks
    style = "|" if "\n" in text.rstrip("\n") or text.endswith("\n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_PlainDumper.add_representer(str, _string)


def to_yaml(*documents: object) -> str:
    """YAML documents in the given key order, separated by ``---``."""
    parts = [
        yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=100)
        for doc in documents
    ]
    return "---\n".join(parts)


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_kit(files: Mapping[str, str], out: Path, *, force: bool = False) -> list[Path]:
    """Write the files under ``out``, each atomically (temp file + rename).

    An existing file with other content is left alone and reported, unless ``force``; nothing
    is written at all in that case, so a refused kit never leaves a mix of old and new files.
    """
    targets = [(out / relative, text) for relative, text in sorted(files.items())]
    if not force:
        clashes = [
            str(path)
            for path, text in targets
            if path.exists() and path.read_text(encoding="utf-8") != text
        ]
        if clashes:
            raise ConfigError(
                f"{len(clashes)} files exist with other content (use --force to replace them): "
                + ", ".join(clashes),
                files=clashes,
            )
    written = []
    for path, text in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        written.append(path)
    return written
