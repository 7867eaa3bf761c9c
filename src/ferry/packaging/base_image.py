"""Base images made here from Debian packages, no registry on the internet needed.

``localhost/ferry-base:bookworm``: a minimal Debian (mmdebstrap, or debootstrap) with python3,
venv and CA certificates, documentation and translations left out. A stack image adds a venv
at /opt/venv with ferry-ml's runtime dependencies (numpy, pandas, scikit-learn, the server)
pinned to the versions installed here, so a model's build only adds its own small layer.
Both are built once and reused.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from ferry.errors import BuilderUnavailable, ConfigError
from ferry.packaging import templates
from ferry.packaging.builders import Builder, BuildInputs
from ferry.packaging.distribution import ferry_wheel
from ferry.packaging.pins import installed_closure, serving_requirements
from ferry.packaging.pipconfig import host_pip_settings, pip_config_file
from ferry.packaging.process import LogSink
from ferry.packaging.slim import slim_script

SUITE = "bookworm"
BASE_IMAGE = f"localhost/ferry-base:{SUITE}"
STACKS: dict[str, str] = {"sklearn": f"localhost/ferry-base-sklearn:{SUITE}"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
_EXCLUDED = ("/usr/share/man/*", "/usr/share/locale/*", "/usr/share/doc/*", "/usr/share/info/*")

STACK_DOCKERFILE = """\
# Ferry stack base: what ferry-ml needs to serve, pinned, in /opt/venv. Built in a first stage
# that has binutils to strip the extension modules' symbols (the bundled *.libs stay untouched:
# auditwheel patched them; byte-identical copies of them in two wheels become one file); the
# venv keeps no pip (builds run Debian's pip wheel), no test suites, no C/Cython sources or
# stubs and no bytecode: a model's build compiles exactly what serving imports
# (ferry.packaging.warm). The slim stage removes what serving never uses from the Debian base
# (ferry.packaging.slim); the last stage copies the result into a single layer, so nothing
# removed is still counted underneath.
FROM @BASE@ AS build
RUN apt-get update -qq \\
    && apt-get install -y -qq --no-install-recommends binutils >/dev/null
# copied, not bind-mounted: a copy's content is part of the layer cache's key, so new pins
# make a new stack (a bind mount's content is not: the old layer would be reused)
COPY requirements.txt /tmp/ferry-stack/requirements.txt
RUN --mount=type=secret,id=pip-config \\
    if [ -f /run/secrets/pip-config ]; then export PIP_CONFIG_FILE=/run/secrets/pip-config; fi \\
    && python3 -m venv --without-pip /opt/venv \\
    && for w in /usr/share/python-wheels/pip-*.whl; do pip="/opt/venv/bin/python $w/pip"; done \\
    && PYTHONDONTWRITEBYTECODE=1 $pip install --no-cache-dir --no-compile \\
        --disable-pip-version-check -r /tmp/ferry-stack/requirements.txt \\
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \\
    && find /opt/venv -type f -path '*/site-packages/*' \\( -name '*.pyi' -o -name '*.pyx' \\
        -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.c' -o -name '*.cpp' \\) \\
        -delete \\
    && find /opt/venv -name '*.so*' -type f -not -path '*.libs/*' \\
        -exec strip --strip-unneeded {} + \\
    && find /opt/venv -type f -size +1k -exec sha256sum {} + | sort \\
        | awk '$1 == last { print kept, $2; next } { last = $1; kept = $2 }' \\
        | while read -r kept copy; do ln -f "$kept" "$copy"; done

FROM @BASE@ AS slim
COPY --from=build /opt/venv /opt/venv
COPY slim.sh /tmp/ferry-slim.sh
RUN sh /tmp/ferry-slim.sh && rm /tmp/ferry-slim.sh

FROM scratch
COPY --from=slim / /
LABEL ai.ferry.stack="@STACK@"
"""


def apt_mirror(sources: tuple[Path, ...] = _SOURCES) -> str:
    """The Debian mirror this machine's apt uses for the suite, else deb.debian.org."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(source.glob("*.list")) + sorted(source.glob("*.sources")))
        elif source.is_file():
            files.append(source)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        mirror = _deb822_mirror(text) if path.suffix == ".sources" else _one_line_mirror(text)
        if mirror:
            return mirror
    return DEFAULT_MIRROR


def _one_line_mirror(text: str) -> str | None:
    for line in text.splitlines():
        parts = re.sub(r"\[[^]]*\]", "", line).split()
        if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
            return parts[1].rstrip("/")
    return None


def _deb822_mirror(text: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "#")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0].rstrip("/")
    return None


def rootfs_command(mirror: str) -> list[str]:
    """A command writing the minimal Debian root filesystem as a tar to stdout."""
    if shutil.which("mmdebstrap"):
        argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES)]
        merged = Path("/usr/share/mmdebstrap/hooks/merged-usr")
        if merged.is_dir():  # merged /usr without the usrmerge package (and its perl)
            argv.append(f"--hook-dir={merged}")
        argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in _EXCLUDED]
        argv += ["--dpkgopt=path-include=/usr/share/doc/*/copyright", SUITE, "-", mirror]
        return argv
    if shutil.which("debootstrap"):
        # debootstrap cannot write to stdout: a tiny shell pipeline does the folder-then-tar
        script = (
            "dir=$(mktemp -d) && trap 'rm -rf \"$dir\"' EXIT && "
            f'debootstrap --variant=minbase --include={",".join(PACKAGES)} {SUITE} "$dir" '
            f'{mirror} >&2 && tar -C "$dir" -c .'
        )
        return ["sh", "-c", script]
    raise BuilderUnavailable(
        "neither mmdebstrap nor debootstrap is installed: run scripts/setup-containers.sh "
        "(apt-get install mmdebstrap) or pass --base with an image that has python3",
        setting="--base",
    )


def ensure_base(builder: Builder, log: LogSink, *, rebuild: bool = False) -> str:
    """The Debian base image, made on first use."""
    if not rebuild and builder.image_exists(BASE_IMAGE):
        log(f"reusing {BASE_IMAGE}")
        return BASE_IMAGE
    mirror = apt_mirror()
    log(f"making {BASE_IMAGE} from {mirror} (about a minute)")
    builder.import_rootfs(rootfs_command(mirror), BASE_IMAGE, log)
    return BASE_IMAGE


def ensure_stack(builder: Builder, stack: str, log: LogSink, *, rebuild: bool = False) -> str:
    """The stack image ``stack`` (and the Debian base under it), made on first use."""
    if stack not in STACKS:
        raise ConfigError(f"no stack {stack!r}; known stacks: {sorted(STACKS)}", field="stack")
    image = STACKS[stack]
    if not rebuild and builder.image_exists(image):
        log(f"reusing {image}")
        return image
    base = ensure_base(builder, log, rebuild=rebuild)
    pins = installed_closure(serving_requirements(ferry_wheel().requires), skip={"ferry-ml"})
    pip = host_pip_settings()
    if not builder.supports_mounts:
        pip = pip.without_mounts()
    log(f"making {image}: {len(pins)} pinned packages into /opt/venv")
    with tempfile.TemporaryDirectory(prefix="ferry-stack-") as folder:
        context = Path(folder)
        dockerfile = templates.fill(STACK_DOCKERFILE, {"BASE": base, "STACK": stack})
        (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        (context / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
        (context / "slim.sh").write_text(slim_script(), encoding="utf-8")
        with pip_config_file(pip) as config:
            inputs = BuildInputs(
                tag=image,
                build_args={},
                secrets={"pip-config": config},
                mounts=pip.mounts,
                masked=pip.secrets,
            )
            builder.build(context, inputs, log)
    return image
