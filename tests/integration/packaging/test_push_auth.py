"""Pushes to a registry that asks for credentials (docker-registry with htpasswd auth on a
free loopback port, plain HTTP). The ``ferry server`` takes them from its environment
(FERRY_REGISTRY_USERNAME / FERRY_REGISTRY_PASSWORD); a wrong password fails the build with
the registry's answer in its log and pushes nothing; the password shows up nowhere: not in a
build's log or record, not in the image, not in the server's log. Both builds reuse the layers
of the session's iris image, so each takes seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ferry.errors import BuildFailed
from ferry.packaging.builders import Credentials, get_builder
from ferry.packaging.images import PASSWORD_ENV, USERNAME_ENV
from ferry.registry import Registry
from tests.integration.conftest import start_ferry, stop_server
from tests.integration.packaging.conftest import (
    SESSION,
    TAG,
    IrisImage,
    need_podman,
    oci_registry_at,
    wait_done,
)
from tests.registry_fixtures import unavailable

pytestmark = pytest.mark.integration
USER = "ferry-pusher"
PASSWORD = f"pw-{SESSION}-Xq7v"  # noqa: S105 - the test hunts for it everywhere
OTHER = f"other-{SESSION}"  # the password the second registry knows USER by
MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


def refusal(registry: str) -> str:
    """How podman and buildah report the registry's 401 to a login (they turn distribution's
    "unauthorized: authentication required" into these words)."""
    return f'logging into "{registry}": invalid username/password'


@dataclass(frozen=True)
class Pusher:
    url: str
    log: Path  # the server's own log


@dataclass(frozen=True)
class Build:
    done: dict[str, Any]  # the final GET .../builds/{id}, log included
    log: str  # the log as streamed while it ran
    dest: str


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with oci_registry_at(tmp_path_factory.mktemp("auth-registry"), users={USER: PASSWORD}) as at:
        yield at


@pytest.fixture(scope="module")
def other_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry that knows USER by another password: the server's is the wrong one here."""
    with oci_registry_at(tmp_path_factory.mktemp("other-registry"), users={USER: OTHER}) as at:
        yield at


@pytest.fixture(scope="module")
def pusher(
    tmp_path_factory: pytest.TempPathFactory,
    image_bundle: Path,
    iris_image: IrisImage,  # the stack base exists and the iris layers are cached
) -> Iterator[Pusher]:
    need_podman()
    home = tmp_path_factory.mktemp("push-home")
    with Registry.open(f"sqlite:///{home / 'ferry.db'}", str(home / "artifacts")) as registry:
        registry.register(image_bundle, "iris")
    log = tmp_path_factory.mktemp("push-log") / "server.log"
    env = {"FERRY_HOME": str(home), USERNAME_ENV: USER, PASSWORD_ENV: PASSWORD}
    process, url = start_ferry(["server", "--workers", "1"], log=log, env=env)
    yield Pusher(url=url, log=log)
    stop_server(process)


def run_build(pusher: Pusher, dest: str, tag: str) -> Build:
    answer = httpx.post(
        f"{pusher.url}/api/v1/models/iris/versions/1/builds",
        json={"push": dest, "tls_verify": False, "tag": tag},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    done, log = wait_done(pusher.url, answer.json())
    return Build(done=done, log=log, dest=dest)


@pytest.fixture(scope="module")
def pushed(pusher: Pusher, auth_registry: str) -> Iterator[Build]:
    tag = f"localhost/ferry-test/iris:auth-{SESSION}"
    yield run_build(pusher, f"{auth_registry}/ferry/iris:1", tag)
    podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="module")
def refused(pusher: Pusher, other_registry: str) -> Iterator[Build]:
    tag = f"localhost/ferry-test/iris:refused-{SESSION}"
    yield run_build(pusher, f"{other_registry}/ferry/iris:1", tag)
    podman("rmi", "--force", tag, check=False)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def registry_get(address: str, path: str, password: str | None, **kwargs: Any) -> httpx.Response:
    auth = (USER, password) if password is not None else None
    return httpx.get(f"http://{address}/v2/{path}", auth=auth, timeout=10, **kwargs)


def test_push_with_credentials_from_the_environment(pushed: Build, auth_registry: str) -> None:
    done = pushed.done
    assert done["status"] == "succeeded", pushed.log[-3000:]
    assert done["pushed"] == pushed.dest
    assert f"pushed {pushed.dest}" in pushed.log
    # the registry does ask: nothing without the credentials
    assert registry_get(auth_registry, "ferry/iris/tags/list", None).status_code == 401
    assert registry_get(auth_registry, "ferry/iris/tags/list", "nope").status_code == 401
    tags = registry_get(auth_registry, "ferry/iris/tags/list", PASSWORD)
    assert tags.status_code == 200, tags.text
    assert tags.json()["tags"] == ["1"]
    manifest = registry_get(
        auth_registry, "ferry/iris/manifests/1", PASSWORD, headers={"Accept": MANIFESTS}
    )
    assert manifest.status_code == 200, manifest.text
    config = registry_get(
        auth_registry,
        f"ferry/iris/blobs/{manifest.json()['config']['digest']}",
        PASSWORD,
        follow_redirects=True,
    )
    assert config.status_code == 200
    labels = json.loads(config.content)["config"]["Labels"]
    assert labels["ai.ferry.model.name"] == "iris"
    assert labels["ai.ferry.model.version"] == "1"
    # the image pushed is the one built: the same labels as the local image's
    local = podman("image", "inspect", "--format", "{{json .Labels}}", done["image"]).stdout
    assert labels == json.loads(local)
    assert {key for key in labels if key.startswith("ai.ferry.")} >= {
        "ai.ferry.model.name",
        "ai.ferry.model.version",
        "ai.ferry.model.sha256",
        "ai.ferry.version",
    }


def test_wrong_password_fails_the_build_and_pushes_nothing(
    refused: Build, pusher: Pusher, other_registry: str
) -> None:
    done = refused.done
    assert done["status"] == "failed", refused.log[-3000:]
    assert done["pushed"] is None
    # the registry's refusal, in the log and in the error
    assert refusal(other_registry) in refused.log, refused.log[-3000:]
    assert refusal(other_registry) in done["error"]
    assert f"pushed {refused.dest}" not in refused.log
    # nothing at all reached the registry: no repository, no tag
    catalog = registry_get(other_registry, "_catalog", OTHER)
    assert catalog.status_code == 200, catalog.text
    assert catalog.json()["repositories"] == []
    assert registry_get(other_registry, "ferry/iris/tags/list", OTHER).status_code == 404
    # the server keeps serving, and the version may be built again
    assert httpx.get(f"{pusher.url}/healthz", timeout=10).status_code == 200
    builds = httpx.get(f"{pusher.url}/api/v1/models/iris/versions/1/builds", timeout=10)
    assert builds.status_code == 200
    assert done["id"] in [item["id"] for item in builds.json()["items"]]


def test_the_password_shows_up_nowhere(pushed: Build, refused: Build, pusher: Pusher) -> None:
    assert pushed.done["status"] == "succeeded", pushed.log[-3000:]
    for build in (pushed, refused):
        assert PASSWORD not in build.log
        path = f"api/v1/models/iris/versions/1/builds/{build.done['id']}"
        record = httpx.get(f"{pusher.url}/{path}", timeout=10)
        assert record.status_code == 200
        assert USER not in json.dumps(record.json()["options"])
        assert PASSWORD not in record.text
    # the list of builds shows every record too
    listed = httpx.get(f"{pusher.url}/api/v1/models/iris/versions/1/builds", timeout=10)
    assert PASSWORD not in listed.text
    image = pushed.done["image"]
    inspected = podman("image", "inspect", image).stdout
    history = podman("history", "--no-trunc", image).stdout
    assert "ai.ferry.model.name" in inspected  # the image is there to look into
    assert "ferry" in history
    assert PASSWORD not in inspected
    assert PASSWORD not in history
    assert PASSWORD not in pusher.log.read_text(errors="replace")


def test_buildah_pushes_with_credentials_too(
    iris_image: IrisImage, auth_registry: str, other_registry: str
) -> None:
    """buildah's push (login into a temporary authfile, then push) straight from Python, on
    the session's image: right credentials push it, wrong ones raise with the refusal."""
    if shutil.which("buildah") is None:
        unavailable("buildah is not installed (make test runs setup-containers.sh)")
    builder = get_builder("buildah")
    problem = builder.problem()
    if problem is not None:
        unavailable(f"buildah does not work here: {problem}")
    lines: list[str] = []
    dest = f"{auth_registry}/ferry/iris-buildah:{SESSION}"
    builder.push(TAG, dest, lines.append, credentials=Credentials(USER, PASSWORD), tls_verify=False)
    tags = registry_get(auth_registry, "ferry/iris-buildah/tags/list", PASSWORD)
    assert tags.status_code == 200, tags.text
    assert tags.json()["tags"] == [SESSION]
    with pytest.raises(BuildFailed) as failed:
        builder.push(
            TAG,
            f"{other_registry}/ferry/iris-buildah:{SESSION}",
            lines.append,
            credentials=Credentials(USER, PASSWORD),
            tls_verify=False,
        )
    assert refusal(other_registry) in failed.value.message
    assert registry_get(other_registry, "_catalog", OTHER).json()["repositories"] == []
    assert PASSWORD not in "\n".join(lines) + failed.value.message
