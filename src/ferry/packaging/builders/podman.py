"""podman: daemonless builds, runs and archives (rootful here: runc + cgroupfs, see
scripts/setup-containers.sh)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ferry.packaging.builders import BuildInputs, Credentials
from ferry.packaging.process import LogSink, pipe_logged, run_logged, run_quiet

_LOADED = re.compile(r"Loaded image(?:\(s\))?:\s*(\S+)")


class PodmanBuilder:
    name = "podman"
    supports_mounts = True
    command = "podman"

    def problem(self) -> str | None:
        if shutil.which(self.command) is None:
            return f"{self.command} is not installed"
        info = run_quiet([self.command, "info", "--format", "{{.Host.OCIRuntime.Name}}"])
        if info.returncode != 0:
            return f"`{self.command} info` fails: {info.stderr.strip()[-300:]}"
        return None

    def image_exists(self, ref: str) -> bool:
        return run_quiet([self.command, "image", "exists", ref]).returncode == 0

    def build(self, context: Path, inputs: BuildInputs, log: LogSink) -> None:
        argv = [self.command, "build", "--format", "docker", "--network", "host", "--layers"]
        for key, value in sorted(inputs.build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        for secret_id, path in sorted(inputs.secrets.items()):
            argv += ["--secret", f"id={secret_id},src={path}"]
        for host, inside in inputs.mounts:
            argv += ["--volume", f"{host}:{inside}:ro"]
        if inputs.no_cache:
            argv.append("--no-cache")
        argv += ["--tag", inputs.tag, str(context)]
        run_logged(argv, log, what=f"{self.command} build", secrets=inputs.masked)

    def import_rootfs(self, producer: Sequence[str], tag: str, log: LogSink) -> None:
        pipe_logged(producer, [self.command, "import", "-", tag], log, what="podman import")

    def run(self, image: str, argv: Sequence[str], log: LogSink) -> str:
        command = [self.command, "run", "--rm", "--network", "none", "--no-healthcheck"]
        command += ["--entrypoint", argv[0]]
        return run_logged([*command, image, *argv[1:]], log, what="the smoke test")

    def save(self, image: str, dest: Path, log: LogSink) -> None:
        argv = [self.command, "save", "--format", "oci-archive", "--output", str(dest), image]
        run_logged(argv, log, what=f"{self.command} save")

    def load(self, archive: Path, log: LogSink) -> str:
        output = run_logged([self.command, "load", "--input", str(archive)], log)
        found = _LOADED.findall(output)
        if not found:
            from ferry.errors import BuildFailed

            raise BuildFailed(f"{archive}: {self.command} load named no image:\n{output}")
        return str(found[-1]).split(",")[0]

    def push(
        self,
        image: str,
        dest: str,
        log: LogSink,
        *,
        credentials: Credentials | None = None,
        tls_verify: bool = True,
    ) -> None:
        with tempfile.TemporaryDirectory(prefix="ferry-auth-") as folder:
            authfile = os.path.join(folder, "auth.json")
            tls = f"--tls-verify={'true' if tls_verify else 'false'}"
            argv = [self.command, "push", tls, "--authfile", authfile]
            if credentials is not None:
                login = [self.command, "login", tls, "--authfile", authfile]
                login += ["--username", credentials.username, "--password-stdin"]
                _login(login, dest.split("/", 1)[0], credentials.password, log)
            else:
                Path(authfile).write_text("{}", encoding="utf-8")
            run_logged([*argv, image, f"docker://{dest}"], log, what=f"{self.command} push")

    def image_size(self, ref: str) -> int:
        result = run_quiet([self.command, "image", "inspect", "--format", "{{.Size}}", ref])
        return int(result.stdout.strip() or 0)

    def remove(self, ref: str) -> None:
        run_quiet([self.command, "rmi", "--force", ref])


def _login(argv: list[str], registry: str, password: str, log: LogSink) -> None:
    import subprocess

    log("$ " + " ".join(argv) + " " + registry)
    result = subprocess.run(  # noqa: S603
        [*argv, registry], input=password, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        from ferry.errors import BuildFailed

        raise BuildFailed(f"login to {registry} failed: {result.stderr.strip()}")
    log(result.stdout.strip())
