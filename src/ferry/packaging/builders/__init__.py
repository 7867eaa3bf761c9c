"""Image builders: a protocol and a table by name (docker, podman, buildah), tried in that
order when none is named. Each module imports only the standard library and shells out."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ferry.errors import BuilderUnavailable, ConfigError
from ferry.packaging.process import LogSink


@dataclass(frozen=True, slots=True)
class BuildInputs:
    """Everything a build needs besides the context folder."""

    tag: str
    build_args: dict[str, str]
    secrets: dict[str, Path]  # build secret id -> file
    mounts: Sequence[tuple[str, str]] = ()  # read-only host path -> path inside RUN steps
    masked: Sequence[str] = ()  # strings never to show in the log
    no_cache: bool = False  # rebuild every step instead of reusing cached layers


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


class Builder(Protocol):
    name: str
    supports_mounts: bool  # can RUN steps see read-only host folders (podman/buildah -v)

    def problem(self) -> str | None:
        """None when this builder works here, else why not (for the error message)."""

    def image_exists(self, ref: str) -> bool: ...

    def build(self, context: Path, inputs: BuildInputs, log: LogSink) -> None: ...

    def import_rootfs(self, producer: Sequence[str], tag: str, log: LogSink) -> None:
        """``producer`` writes a root filesystem tar to stdout; make it the image ``tag``."""

    def run(self, image: str, argv: Sequence[str], log: LogSink) -> str:
        """Run ``argv`` in a throwaway container of ``image`` without network."""

    def save(self, image: str, dest: Path, log: LogSink) -> None:
        """Write ``image`` as an OCI archive."""

    def load(self, archive: Path, log: LogSink) -> str:
        """Load an archive written by ``save``; return the image name it carries."""

    def push(
        self,
        image: str,
        dest: str,
        log: LogSink,
        *,
        credentials: Credentials | None = None,
        tls_verify: bool = True,
    ) -> None: ...

    def image_size(self, ref: str) -> int:
        """Bytes the image takes, uncompressed."""

    def remove(self, ref: str) -> None: ...


_BUILDERS: dict[str, str] = {
    "docker": "ferry.packaging.builders.docker:DockerBuilder",
    "podman": "ferry.packaging.builders.podman:PodmanBuilder",
    "buildah": "ferry.packaging.builders.buildah:BuildahBuilder",
}

BUILDERS = tuple(_BUILDERS)


def get_builder(name: str) -> Builder:
    """The named builder, whether or not it works here."""
    if name not in _BUILDERS:
        raise ConfigError(
            f"no image builder {name!r}; known builders: {sorted(_BUILDERS)}", field="builder"
        )
    module, _, attr = _BUILDERS[name].partition(":")
    builder: Builder = getattr(importlib.import_module(module), attr)()
    return builder


def choose_builder(name: str | None = None) -> Builder:
    """``name``'s builder if it works here; with no name the first that does (docker only
    when its daemon answers, then podman, then buildah)."""
    names = [name] if name else list(_BUILDERS)
    reasons = []
    for candidate in names:
        builder = get_builder(candidate)
        problem = builder.problem()
        if problem is None:
            return builder
        reasons.append(f"{candidate}: {problem}")
    raise BuilderUnavailable(
        "no image builder works here (" + "; ".join(reasons) + "); install podman "
        "(scripts/setup-containers.sh) or start a docker daemon",
        builders=names,
        setting="builder",
    )
