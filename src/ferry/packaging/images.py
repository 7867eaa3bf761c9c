"""Build, smoke-test, push, export and import the image of a registered version."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import BuildFailed
from ferry.packaging.base_image import ensure_stack
from ferry.packaging.builders import Builder, BuildInputs, Credentials, choose_builder
from ferry.packaging.context import (
    DEFAULT_PORT,
    STACK_BASE,
    ContextSpec,
    check_image_ref,
    context_digest,
    default_tag,
    write_context,
)
from ferry.packaging.pipconfig import host_pip_settings, pip_config_file
from ferry.packaging.process import LogSink
from ferry.registry.records import VersionRecord
from ferry.registry.service import Registry

SMOKE_COMMAND = ("python", "-m", "ferry.packaging.smoke", "/model")
# credentials for --push come from the environment, never from arguments or the database
USERNAME_ENV = "FERRY_REGISTRY_USERNAME"
PASSWORD_ENV = "FERRY_REGISTRY_PASSWORD"  # noqa: S105 - a variable's name, not a password


@dataclass(frozen=True, slots=True)
class ImageOptions:
    builder: str | None = None
    base: str | None = None  # None: the sklearn stack made here
    tag: str | None = None
    port: int = DEFAULT_PORT
    push: str | None = None
    tls_verify: bool = True
    no_cache: bool = False


@dataclass(frozen=True, slots=True)
class BuiltImage:
    image: str
    size: int
    context_sha256: str
    smoke: str
    pushed: str | None


def version_context(
    registry: Registry,
    record: VersionRecord,
    dest: Path,
    options: ImageOptions,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the build context of ``record`` at ``dest``."""
    with tempfile.TemporaryDirectory(prefix="ferry-bundle-") as folder:
        bundle = registry.materialize(record.model, record.version, Path(folder) / "bundle")
        spec = ContextSpec(
            model=record.model,
            version=record.version,
            sha256=record.sha256,
            requirements=tuple(record.requirements),
            bundle=bundle,
            base=options.base or STACK_BASE,
            tag=options.tag,
            port=options.port,
        )
        return write_context(spec, dest, overwrite=overwrite)


def build_image(
    registry: Registry, record: VersionRecord, options: ImageOptions, log: LogSink
) -> BuiltImage:
    """Context, base, build, smoke test inside the image, then the optional push."""
    if options.push:
        check_image_ref(options.push, "push")
    builder = choose_builder(options.builder)
    log(f"builder: {builder.name}")
    if options.base:
        check_image_ref(options.base, "base")
        base = options.base
    else:
        base = ensure_stack(builder, "sklearn", log)
    options = ImageOptions(
        builder=builder.name,
        base=base,
        tag=options.tag,
        port=options.port,
        push=options.push,
        tls_verify=options.tls_verify,
        no_cache=options.no_cache,
    )
    with tempfile.TemporaryDirectory(prefix="ferry-context-") as folder:
        context = version_context(registry, record, Path(folder) / "context", options)
        digest = context_digest(context)
        tag = options.tag or default_tag(record.model, record.version)
        log(f"context sha256 {digest}")
        pip = host_pip_settings()
        if not builder.supports_mounts:
            pip = pip.without_mounts()
        with pip_config_file(pip) as config:
            inputs = BuildInputs(
                tag=tag,
                build_args={"BASE": base},
                secrets={"pip-config": config},
                mounts=pip.mounts,
                masked=pip.secrets,
                no_cache=options.no_cache,
            )
            builder.build(context, inputs, log)
    smoke = smoke_test(builder, tag, log)
    size = builder.image_size(tag)
    log(f"image {tag}: {size / 1e6:.1f} MB")
    pushed = None
    if options.push:
        builder.push(
            tag, options.push, log, credentials=env_credentials(), tls_verify=options.tls_verify
        )
        pushed = options.push
        log(f"pushed {pushed}")
    return BuiltImage(image=tag, size=size, context_sha256=digest, smoke=smoke, pushed=pushed)


def smoke_test(builder: Builder, image: str, log: LogSink) -> str:
    """Replay the version's example inside the image; BuildFailed when it does not match."""
    log("smoke test: replaying the stored example inside the image")
    try:
        output = builder.run(image, SMOKE_COMMAND, log)
    except BuildFailed as exc:
        raise BuildFailed(f"the image {image} failed its smoke test: {exc.message}") from exc
    return output.strip().splitlines()[-1] if output.strip() else ""


def env_credentials() -> Credentials | None:
    username = os.environ.get(USERNAME_ENV)
    if not username:
        return None
    return Credentials(username=username, password=os.environ.get(PASSWORD_ENV, ""))


def export_image(builder: Builder, image: str, dest: Path, log: LogSink) -> Path:
    """Write ``image`` as an OCI archive at ``dest`` (atomically: a temp file, then rename)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        builder.save(image, partial, log)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def import_image(builder: Builder, archive: Path, log: LogSink) -> str:
    if not Path(archive).is_file():
        raise BuildFailed(f"{archive} does not exist", path=str(archive))
    return builder.load(Path(archive), log)
