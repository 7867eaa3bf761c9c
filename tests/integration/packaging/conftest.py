"""One real iris image per test session, built with podman on the locally made base.

The Debian base and the sklearn stack image are built once per machine and then reused from
podman's storage (the first run takes a few minutes, later ones seconds). The build goes
through a private package index on loopback whose URL carries a token, to show the token
never reaches a layer.
"""

from __future__ import annotations

import base64
import fcntl
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferry.model
from ferry.config.settings import get_settings
from ferry.packaging.base_image import ensure_stack
from ferry.packaging.builders import choose_builder
from ferry.packaging.images import BuiltImage, ImageOptions, build_image
from ferry.registry import Registry
from tests.integration.conftest import free_port
from tests.registry_fixtures import unavailable

TOKEN = "ferrytok-5b1f0c9e7d2a4c88"  # noqa: S105 - a fake token the test hunts for
# one image per test session (xdist worker), removed at its end: a session's export test
# removes and re-imports its own tag, and other sessions may run on the same machine at once
SESSION = uuid.uuid4().hex[:10]
TAG = f"localhost/ferry-test/iris:acceptance-{SESSION}"
STACK_LOCK = Path(tempfile.gettempdir()) / "ferry-test-stack.lock"
EXTRA_REQUIREMENT = "tabulate==0.10.0"


@dataclass
class IndexLog:
    paths: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IrisImage:
    built: BuiltImage
    home: Path
    index: IndexLog
    build_log: list[str]


def need_podman() -> None:
    if shutil.which("podman") is None:
        unavailable("podman is not installed (make test runs scripts/setup-containers.sh)")
    if subprocess.run(["podman", "info"], capture_output=True).returncode != 0:
        unavailable("podman does not work here (see scripts/setup-containers.sh)")


@pytest.fixture(scope="session")
def private_index() -> Iterator[tuple[str, IndexLog]]:
    """An empty simple index on loopback that records who asked (and with which auth)."""
    log = IndexLog()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            log.paths.append(self.path)
            log.authorizations.append(self.headers.get("Authorization", ""))
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://ferry:{TOKEN}@127.0.0.1:{server.server_address[1]}/simple/"
    yield url, log
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def image_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> Path:
    """iris needing one small package the stack lacks, so pip must ask the indexes (the
    private one included) during the model's own layer."""
    import sklearn

    dest = tmp_path_factory.mktemp("image-bundle") / "iris"
    ferry.model.save(
        iris_model,
        dest,
        example=iris_data[0].sample(8, random_state=1),
        name="iris",
        requirements=[f"scikit-learn=={sklearn.__version__}", EXTRA_REQUIREMENT],
    )
    return dest


@pytest.fixture(scope="session")
def image_home(tmp_path_factory: pytest.TempPathFactory, image_bundle: Path) -> Path:
    home = tmp_path_factory.mktemp("image-home")
    with Registry.open(f"sqlite:///{home / 'ferry.db'}", str(home / "artifacts")) as registry:
        record = registry.register(image_bundle, "iris")
        registry.set_alias("iris", "production", record.version)
    return home


@pytest.fixture(scope="session")
def iris_image(image_home: Path, private_index: tuple[str, IndexLog]) -> IrisImage:
    need_podman()
    url, index_log = private_index
    lines: list[str] = []
    builder = choose_builder("podman")
    # made once per machine, then reused; parallel workers wait for the first to make it
    with STACK_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_stack(builder, "sklearn", lines.append)
    saved = os.environ.get("PIP_EXTRA_INDEX_URL")
    # the host's own extra indexes stay; the private one (with its token) is added
    extra = subprocess.run(
        [os.sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    os.environ["PIP_EXTRA_INDEX_URL"] = f"{extra} {url}".strip()
    try:
        with Registry.open(
            f"sqlite:///{image_home / 'ferry.db'}", str(image_home / "artifacts")
        ) as registry:
            record = registry.resolve("iris@production")
            built = build_image(
                registry,
                record,
                ImageOptions(builder="podman", tag=TAG, no_cache=True),
                lines.append,
            )
    finally:
        if saved is None:
            os.environ.pop("PIP_EXTRA_INDEX_URL", None)
        else:
            os.environ["PIP_EXTRA_INDEX_URL"] = saved
        get_settings.cache_clear()
    yield IrisImage(built=built, home=image_home, index=index_log, build_log=lines)
    subprocess.run(["podman", "rmi", "--force", TAG], capture_output=True)


def basic_auth_token(header: str) -> str:
    if not header.startswith("Basic "):
        return ""
    return base64.b64decode(header.removeprefix("Basic ")).decode()


@contextmanager
def oci_registry_at(root: Path, *, users: dict[str, str] | None = None) -> Iterator[str]:
    """Debian's docker-registry (distribution) on a free loopback port, plain HTTP, storage
    under ``root``; yields its ``host:port``. With ``users`` (name -> password) it asks for
    them (htpasswd auth, bcrypt hashes), else it asks for nothing."""
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (make test runs setup-containers.sh)")
    port = free_port()
    auth = ""
    if users:
        import bcrypt

        htpasswd = root / "htpasswd"
        # cost 4, the least: the registry checks the hash on every request of a push
        htpasswd.write_text(
            "".join(
                f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n"
                for name, password in users.items()
            )
        )
        auth = f"auth:\n  htpasswd:\n    realm: ferry-test\n    path: {htpasswd}\n"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    ready = (401,) if users else (200,)
    log_path = root / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(binary), "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code in ready:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            pytest.fail(f"docker-registry did not start: {log_path.read_text()}")
        time.sleep(0.2)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_done(url: str, build: dict[str, Any], timeout: float = 600) -> tuple[dict[str, Any], str]:
    """Poll the build, collecting its log incrementally, until it finishes."""
    path = f"{url}/api/v1/models/{build['model']}/versions/{build['version']}/builds/{build['id']}"
    offset, text = 0, ""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(path, params={"log_offset": offset}, timeout=10).json()
        assert answer["log_offset"] == offset
        text += answer["log"]
        offset = answer["next_offset"]
        if answer["status"] in ("succeeded", "failed"):
            return answer, text
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.5)
