"""buildah: builds without a daemon or podman; containers for the smoke test come from
``buildah from`` + ``buildah run``. Shares podman's image storage on the same machine."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ferry.errors import BuildFailed
from ferry.packaging.builders.podman import PodmanBuilder
from ferry.packaging.process import LogSink, run_logged, run_quiet

_REF_NAME = "org.opencontainers.image.ref.name"


class BuildahBuilder(PodmanBuilder):
    name = "buildah"
    command = "buildah"

    def problem(self) -> str | None:
        import shutil

        if shutil.which(self.command) is None:
            return "buildah is not installed"
        result = run_quiet([self.command, "images", "--quiet"])
        if result.returncode != 0:
            return f"`buildah images` fails: {result.stderr.strip()[-300:]}"
        return None

    def image_exists(self, ref: str) -> bool:
        return run_quiet([self.command, "inspect", "--type", "image", ref]).returncode == 0

    def import_rootfs(self, producer: Sequence[str], tag: str, log: LogSink) -> None:
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ferry-rootfs-") as folder:
            tar = Path(folder) / "rootfs.tar"
            log("$ " + " ".join(producer) + f" > {tar}")
            with tar.open("wb") as out:
                result = subprocess.run(  # noqa: S603
                    list(producer), stdout=out, stderr=subprocess.PIPE, timeout=3600, check=False
                )
            if result.returncode != 0:
                raise BuildFailed(f"{producer[0]} failed: {result.stderr.decode()[-3000:]}")
            container = self._from("scratch", log)
            try:
                run_logged([self.command, "add", container, str(tar), "/"], log)
                run_logged([self.command, "commit", "--format", "docker", container, tag], log)
            finally:
                run_quiet([self.command, "rm", container])

    def run(self, image: str, argv: Sequence[str], log: LogSink) -> str:
        container = self._from(image, log)
        try:
            command = [self.command, "run", "--network", "none", container, "--", *argv]
            return run_logged(command, log, what="the smoke test")
        finally:
            run_quiet([self.command, "rm", container])

    def save(self, image: str, dest: Path, log: LogSink) -> None:
        argv = [self.command, "push", image, f"oci-archive:{dest}:{image}"]
        run_logged(argv, log, what="buildah push to an archive")

    def load(self, archive: Path, log: LogSink) -> str:
        name = _archive_name(archive)
        image_id = run_logged([self.command, "pull", f"oci-archive:{archive}"], log).split()[-1]
        run_logged([self.command, "tag", image_id, name], log)
        return name

    def image_size(self, ref: str) -> int:
        # buildah reports only a rounded text size; the manifest's layer sizes add up exactly
        result = run_quiet([self.command, "inspect", "--type", "image", ref])
        if result.returncode != 0:
            return 0
        manifest = json.loads(json.loads(result.stdout)["Manifest"])
        return int(sum(layer["size"] for layer in manifest.get("layers", [])))

    def remove(self, ref: str) -> None:
        run_quiet([self.command, "rmi", "--force", ref])

    def _from(self, image: str, log: LogSink) -> str:
        pull = [] if image == "scratch" else ["--pull-never"]
        output = run_logged([self.command, "from", *pull, image], log)
        return output.strip().splitlines()[-1]


def _archive_name(archive: Path) -> str:
    """The image name an OCI archive's index carries."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise BuildFailed(f"{archive} is not an OCI archive (no index.json)")
        index = json.load(member)
    for manifest in index.get("manifests", []):
        name = manifest.get("annotations", {}).get(_REF_NAME)
        if name:
            return str(name)
    raise BuildFailed(f"{archive} names no image (no {_REF_NAME} annotation)")
