"""Build jobs over HTTP on a real ``ferry server``: a failing build reports pip's error in its
log while the server keeps serving, one build at a time per version, and a good build pushes
its image to a local OCI registry (Debian's docker-registry on a free loopback port)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

import ferry.model
from ferry.registry import Registry
from tests.integration.conftest import start_ferry, stop_server
from tests.integration.packaging.conftest import (
    SESSION,
    IrisImage,
    need_podman,
    oci_registry_at,
    wait_done,
)

pytestmark = pytest.mark.integration
MISSING = "ferry-no-such-package-4d1c==1.0"
ISOLATED = ("FERRY_DATABASE_URL", "FERRY_ARTIFACTS", "FERRY_S3_ENDPOINT_URL", "FERRY_URL")


@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry (distribution) on a free loopback port, storage in tmp."""
    with oci_registry_at(tmp_path_factory.mktemp("oci-registry")) as address:
        yield address


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    iris_model: LogisticRegression,
    iris_data: Any,
    image_bundle: Path,
    iris_image: IrisImage,  # the stack base exists (and the acceptance image is built)
) -> Iterator[str]:
    need_podman()
    home = tmp_path_factory.mktemp("jobs-home")
    broken = tmp_path_factory.mktemp("broken") / "iris"
    ferry.model.save(
        iris_model,
        broken,
        example=iris_data[0].head(3),
        name="iris",
        requirements=[MISSING],
    )
    with Registry.open(f"sqlite:///{home / 'ferry.db'}", str(home / "artifacts")) as registry:
        registry.register(image_bundle, "iris")  # version 1: builds
        registry.register(broken, "iris")  # version 2: its requirement cannot be installed
    log = tmp_path_factory.mktemp("jobs-log") / "server.log"
    inherited = {k: v for k, v in os.environ.items() if k not in ISOLATED}
    process, url = start_ferry(
        ["server", "--workers", "1"], log=log, env={**inherited, "FERRY_HOME": str(home)}
    )
    yield url
    stop_server(process)


def test_failed_build_reports_pip_error_and_server_keeps_serving(server: str) -> None:
    builds = f"{server}/api/v1/models/iris/versions/2/builds"
    first = httpx.post(builds, json={}, timeout=30)
    assert first.status_code == 202, first.text
    build = first.json()
    assert build["status"] in ("queued", "running")
    again = httpx.post(builds, json={}, timeout=30)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "build_in_progress"
    # the server answers predictions while the build runs
    rows = [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
    predicted = httpx.post(
        f"{server}/v1/models/iris/predict", json={"instances": rows}, timeout=120
    )
    assert predicted.status_code == 200, predicted.text
    done, log = wait_done(server, build)
    assert done["status"] == "failed"
    assert "ferry-no-such-package-4d1c" in log
    assert "No matching distribution found" in log  # pip's own words
    assert "No matching distribution found" in done["error"]
    assert httpx.get(f"{server}/healthz").status_code == 200
    listed = httpx.get(builds).json()["items"]
    assert [b["id"] for b in listed] == [build["id"]]
    # finished: a new build of the version may start
    retry = httpx.post(builds, json={}, timeout=30)
    assert retry.status_code == 202
    wait_done(server, retry.json())


def test_bad_requests_are_4xx(server: str) -> None:
    builds = f"{server}/api/v1/models/iris/versions/1/builds"
    bad_builder = httpx.post(builds, json={"builder": "kaniko"})
    assert bad_builder.status_code == 400
    assert bad_builder.json()["error"]["details"]["field"] == "builder"
    bad_tag = httpx.post(builds, json={"tag": "Not A Tag"})
    assert bad_tag.status_code == 400
    assert bad_tag.json()["error"]["details"]["field"] == "tag"
    unknown = httpx.post(f"{server}/api/v1/models/iris/versions/99/builds", json={})
    assert unknown.status_code == 404
    missing = httpx.get(f"{builds}/0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "build_not_found"


def test_build_and_push_to_a_local_registry(server: str, oci_registry: str) -> None:
    dest = f"{oci_registry}/ferry/iris:1"
    answer = httpx.post(
        f"{server}/api/v1/models/iris/versions/1/builds",
        json={
            "push": dest,
            "tls_verify": False,
            "tag": f"localhost/ferry-test/iris:pushed-{SESSION}",
        },
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    done, log = wait_done(server, answer.json())
    assert done["status"] == "succeeded", log[-3000:]
    assert done["pushed"] == dest
    subprocess.run(["podman", "rmi", "--force", done["image"]], capture_output=True)
    assert done["size"] > 0
    assert "smoke test passed" in log
    tags = httpx.get(f"http://{oci_registry}/v2/ferry/iris/tags/list", timeout=10).json()
    assert tags["tags"] == ["1"]
    manifest = httpx.get(
        f"http://{oci_registry}/v2/ferry/iris/manifests/1",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
        timeout=10,
    )
    assert manifest.status_code == 200
    assert len(manifest.json()["layers"]) >= 2


def test_a_model_can_opt_in_to_building_when_an_alias_moves(server: str) -> None:
    builds = f"{server}/api/v1/models/iris/versions/1/builds"
    before = {b["id"] for b in httpx.get(builds).json()["items"]}
    tagged = httpx.patch(
        f"{server}/api/v1/models/iris", json={"tags": {"ferry.autobuild": "true"}}, timeout=30
    )
    assert tagged.status_code == 200, tagged.text
    moved = httpx.put(
        f"{server}/api/v1/models/iris/aliases/production", json={"version": 1}, timeout=60
    )
    assert moved.status_code == 200, moved.text
    new = [b for b in httpx.get(builds).json()["items"] if b["id"] not in before]
    assert len(new) == 1
    done, log = wait_done(server, new[0])
    assert done["status"] == "succeeded", log[-3000:]
    assert done["image"] == "localhost/ferry/iris:1"
    # without the tag, moving an alias builds nothing
    httpx.patch(f"{server}/api/v1/models/iris", json={"tags": {}}, timeout=30)
    httpx.put(f"{server}/api/v1/models/iris/aliases/staging", json={"version": 1}, timeout=60)
    assert len(httpx.get(builds).json()["items"]) == len(before) + 1
