"""docker: used only when a daemon answers (``docker info``). BuildKit mounts the pip
secret; host folders cannot be mounted into a docker build, so local indexes are left out."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ferry.packaging.builders import BuildInputs, Credentials
from ferry.packaging.builders.podman import _LOADED
from ferry.packaging.process import LogSink, pipe_logged, run_logged, run_quiet


class DockerBuilder:
    name = "docker"
    supports_mounts = False

    def problem(self) -> str | None:
        if shutil.which("docker") is None:
            return "docker is not installed"
        info = run_quiet(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=15)
        if info.returncode != 0 or not info.stdout.strip():
            return "no docker daemon answers"
        return None

    def image_exists(self, ref: str) -> bool:
        return run_quiet(["docker", "image", "inspect", ref]).returncode == 0

    def build(self, context: Path, inputs: BuildInputs, log: LogSink) -> None:
        argv = ["docker", "build", "--network", "host"]
        for key, value in sorted(inputs.build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        for secret_id, path in sorted(inputs.secrets.items()):
            argv += ["--secret", f"id={secret_id},src={path}"]
        if inputs.mounts:
            log("docker cannot mount host folders into a build; local package indexes skipped")
        if inputs.no_cache:
            argv.append("--no-cache")
        argv += ["--tag", inputs.tag, str(context)]
        os.environ.setdefault("DOCKER_BUILDKIT", "1")
        run_logged(argv, log, what="docker build", secrets=inputs.masked)

    def import_rootfs(self, producer: Sequence[str], tag: str, log: LogSink) -> None:
        pipe_logged(producer, ["docker", "import", "-", tag], log, what="docker import")

    def run(self, image: str, argv: Sequence[str], log: LogSink) -> str:
        command = ["docker", "run", "--rm", "--network", "none", "--entrypoint", argv[0]]
        return run_logged([*command, image, *argv[1:]], log, what="the smoke test")

    def save(self, image: str, dest: Path, log: LogSink) -> None:
        run_logged(["docker", "save", "--output", str(dest), image], log, what="docker save")

    def load(self, archive: Path, log: LogSink) -> str:
        output = run_logged(["docker", "load", "--input", str(archive)], log)
        found = _LOADED.findall(output)
        if not found:
            from ferry.errors import BuildFailed

            raise BuildFailed(f"{archive}: docker load named no image:\n{output}")
        return str(found[-1])

    def push(
        self,
        image: str,
        dest: str,
        log: LogSink,
        *,
        credentials: Credentials | None = None,
        tls_verify: bool = True,
    ) -> None:
        # a private config folder: credentials never land in the user's ~/.docker
        with tempfile.TemporaryDirectory(prefix="ferry-docker-") as config:
            prefix = ["docker", "--config", config]
            if credentials is not None:
                import subprocess

                login = [*prefix, "login", "--username", credentials.username]
                result = subprocess.run(  # noqa: S603
                    [*login, "--password-stdin", dest.split("/", 1)[0]],
                    input=credentials.password,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                if result.returncode != 0:
                    from ferry.errors import BuildFailed

                    raise BuildFailed(f"docker login failed: {result.stderr.strip()}")
            run_logged([*prefix, "tag", image, dest], log)
            run_logged([*prefix, "push", dest], log, what="docker push")

    def image_size(self, ref: str) -> int:
        result = run_quiet(["docker", "image", "inspect", "--format", "{{.Size}}", ref])
        return int(result.stdout.strip() or 0)

    def remove(self, ref: str) -> None:
        run_quiet(["docker", "rmi", "--force", ref])
