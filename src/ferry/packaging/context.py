"""A container build context for one registered version: Dockerfile, scripts, pinned
requirements, ferry-ml's wheel and the bundle. Same inputs give a byte-identical folder.

Layout::

    Dockerfile  .dockerignore  build.sh  run.sh  deploy.sh
    requirements/requirements.txt   the version's requirements + what ferry-ml needs to serve,
                                    pinned to the versions installed (and tested) here
    requirements/constraints.txt    the same pins, for the version's own dependencies
    requirements/ferry_ml-*.whl     ferry-ml itself, installed without dependencies
    bundle/                         the version's files (ferry.yaml, model/, example ...)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ConfigError, InvalidRequest
from ferry.packaging import templates
from ferry.packaging.distribution import Wheel, ferry_wheel
from ferry.packaging.pins import (
    check_requirements,
    installed_closure,
    requirement_name,
    serving_requirements,
)

DEFAULT_PORT = 8080
STACK_BASE = "localhost/ferry-base-sklearn:bookworm"
REQUIREMENTS_DIR = "requirements"
BUNDLE_DIR = "bundle"
# registry/name:tag[@digest], lowercase repository as OCI requires
_IMAGE_REF = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
_SCRIPTS = {
    "build.sh": templates.BUILD_SH,
    "run.sh": templates.RUN_SH,
    "deploy.sh": templates.DEPLOY_SH,
}


@dataclass(frozen=True, slots=True)
class ContextSpec:
    """What a context is made from: the version, its bundle folder and the image options."""

    model: str
    version: int
    sha256: str
    requirements: tuple[str, ...]
    bundle: Path
    base: str = STACK_BASE
    tag: str | None = None
    port: int = DEFAULT_PORT

    @property
    def image_tag(self) -> str:
        return self.tag or default_tag(self.model, self.version)


def default_tag(model: str, version: int) -> str:
    return f"localhost/ferry/{model.lower()}:{version}"


def check_image_ref(value: str, field: str) -> str:
    if not _IMAGE_REF.match(value) or len(value) > 255:
        raise InvalidRequest(
            f"{field} {value!r} is not an image reference like registry/name:tag "
            "(lowercase repository)",
            field=field,
        )
    return value


def write_context(spec: ContextSpec, dest: Path, *, overwrite: bool = False) -> Path:
    """Write the context folder at ``dest``; it appears complete or not at all."""
    check_image_ref(spec.base, "base")
    check_image_ref(spec.image_tag, "tag")
    if not 1 <= spec.port <= 65535:
        raise InvalidRequest(f"port {spec.port} is not 1..65535", field="port")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise ConfigError(
            f"{dest} exists and is not empty; choose a new folder or pass --force", path=str(dest)
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        _fill_context(spec, staging)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _fill_context(spec: ContextSpec, root: Path) -> None:
    from ferry import __version__

    root.mkdir(parents=True)
    wheel = ferry_wheel()
    requirements_sha256 = _write_requirements(spec, root / REQUIREMENTS_DIR, wheel)
    values = {
        "REQUIREMENTS_SHA256": requirements_sha256,
        "WHEEL": wheel.filename,
        "NAME": spec.model,
        "VERSION": str(spec.version),
        "SHA256": spec.sha256,
        "FERRY_VERSION": __version__,
        "BASE": spec.base,
        "TAG": spec.image_tag,
        "PORT": str(spec.port),
    }
    values["HEALTHCHECK"] = templates.fill(templates.HEALTHCHECK, values)
    values["ENTRYPOINT"] = templates.fill(templates.ENTRYPOINT, values)
    _write(root / "Dockerfile", templates.fill(templates.DOCKERFILE, values))
    _write(root / ".dockerignore", templates.DOCKERIGNORE)
    for name, template in _SCRIPTS.items():
        _write(root / name, templates.fill(template, values), executable=True)
    _copy_bundle(spec.bundle, root / BUNDLE_DIR)


def _write_requirements(spec: ContextSpec, requirements_dir: Path, wheel: Wheel) -> str:
    """Write the requirements folder (pins, constraints, the ferry-ml wheel); return the sha256
    of its content. The Dockerfile carries it because the folder reaches the install step as a
    bind mount, whose content is no part of a builder's layer cache key: without it, changed
    pins or a rebuilt ferry-ml wheel of the same name would reuse the stale layer."""
    requirements_dir.mkdir()
    (requirements_dir / wheel.filename).write_bytes(wheel.data)
    own = check_requirements(spec.requirements)
    own_names = {name for name in map(requirement_name, own) if name is not None}
    # what `ferry serve` needs, at the versions installed (and tested) here
    serving = installed_closure(serving_requirements(wheel.requires), skip={"ferry-ml"})
    lines = [
        "# the version's own requirements, as registered",
        *sorted(own),
        "# what ferry-ml needs to serve, pinned to the versions it was tested with",
        *[pin for pin in serving if requirement_name(pin) not in own_names],
    ]
    _write(requirements_dir / "requirements.txt", "\n".join(lines) + "\n")
    # the same pins hold for the version's own dependencies, except where it pins them itself
    header = "# keeps the version's dependencies on the versions ferry-ml was tested with"
    pins = [pin for pin in serving if requirement_name(pin) not in own_names]
    _write(requirements_dir / "constraints.txt", "\n".join([header, *pins]) + "\n")
    return context_digest(requirements_dir)


def _copy_bundle(source: Path, target: Path) -> None:
    if not (source / "ferry.yaml").is_file():
        raise ConfigError(f"{source} is not a bundle folder (no ferry.yaml)", path=str(source))
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        dest.chmod(0o644)


def _write(path: Path, text: str, *, executable: bool = False) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755 if executable else 0o644)


def context_digest(root: Path) -> str:
    """sha256 over every file's relative path, mode and bytes: equal folders, equal digests."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
