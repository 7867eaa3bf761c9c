"""The host's pip index settings, carried into an image build as a secret.

A build must install from what this machine can reach: the same index URLs, find-links
folders and CA bundle that ``pip`` uses here (config files and ``PIP_*`` variables, as
``pip config list`` reports them). They travel as a pip.conf passed as the build secret
``pip-config``, so private index tokens never land in a layer; local folders and the CA bundle
are mounted read-only into the build (podman/buildah ``-v``).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINER_CA = "/run/host-ca.crt"
# settings that say where packages come from; everything else (constraints, caches) stays home
_KEYS = ("index-url", "extra-index-url", "find-links", "no-index", "trusted-host", "timeout")
_ALIASES = {"default-timeout": "timeout"}
_SCOPES = ("global", "user", "site", ":env:")  # lowest to highest precedence


@dataclass(frozen=True, slots=True)
class PipSettings:
    options: dict[str, str]
    mounts: tuple[tuple[str, str], ...] = ()  # (host path, path in the build), read-only
    secrets: tuple[str, ...] = field(default=())  # credentials inside URLs, masked in logs

    def without_mounts(self) -> PipSettings:
        """For builders that cannot mount host paths (docker): local indexes and the mounted
        CA bundle left out, the image's own CA certificates used instead."""
        mounted = {inside for _, inside in self.mounts}
        options: dict[str, str] = {}
        for key, value in self.options.items():
            if key == "cert" and value in mounted:
                continue
            if key in ("index-url", "extra-index-url", "find-links"):
                kept = [v for v in value.split() if _local_path(v) is None]
                if not kept:
                    continue
                value = " ".join(kept)
            options[key] = value
        return PipSettings(options=options, secrets=self.secrets)

    def config_text(self) -> str:
        lines = ["[global]"]
        for key in sorted(self.options):
            lines.append(f"{key} = {self.options[key]}")
        return "\n".join(lines) + "\n"


def host_pip_settings() -> PipSettings:
    """What ``pip config list`` says here, as settings usable inside a build container."""
    options = _read_config_list()
    mounts: dict[str, str] = {}
    secrets: list[str] = []
    for key in ("index-url", "extra-index-url", "find-links"):
        if key in options:
            for location in options[key].split():
                secrets.extend(_credentials(location))
                local = _local_path(location)
                if local is not None and Path(local).exists():
                    # a file:// simple index links its files relatively (../../files/x.whl):
                    # mount the folder that holds the index too
                    folder = str(Path(local).parent) if key != "find-links" else local
                    mounts[folder] = folder
    cert = options.pop("cert", None)
    ca = Path(cert) if cert else HOST_CA
    if ca.is_file():
        mounts[str(ca)] = CONTAINER_CA
        options["cert"] = CONTAINER_CA
    return PipSettings(
        options=options, mounts=tuple(sorted(mounts.items())), secrets=tuple(secrets)
    )


@contextmanager
def pip_config_file(settings: PipSettings) -> Iterator[Path]:
    """The settings as a private (0600) temporary pip.conf, removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="ferry-pip-", suffix=".conf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(settings.config_text())
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _read_config_list() -> dict[str, str]:
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found: dict[str, dict[str, str]] = {scope: {} for scope in _SCOPES}
    for line in result.stdout.splitlines():
        name, sep, raw = line.partition("=")
        scope, dot, key = name.rpartition(".")
        if not sep or not dot or scope not in found:
            continue
        key = _ALIASES.get(key, key)
        if key not in (*_KEYS, "cert"):
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, str):
            found[scope][key] = value
    merged: dict[str, str] = {}
    for scope in _SCOPES:
        merged.update(found[scope])
    return merged


def _local_path(location: str) -> str | None:
    parts = urlsplit(location)
    if parts.scheme == "file":
        return parts.path.rstrip("/") or "/"
    if not parts.scheme and location.startswith("/"):
        return location.rstrip("/") or "/"
    return None


def _credentials(location: str) -> list[str]:
    parts = urlsplit(location)
    found = []
    if parts.password:
        found.append(parts.password)
    if parts.username and parts.password is None:
        found.append(parts.username)  # token-as-username indexes (https://TOKEN@host/simple)
    return found
