"""A frozen S3 server mid-upload, against a real ``ferry server`` (issue 13, "No deadline on
S3": the upload hung 245 s and left orphan blobs). The test's own moto server is SIGSTOPped
once the multipart upload of the bundle's large file has begun: the upload answers 503
``storage_unavailable`` within its deadline, no version is registered, and after SIGCONT
``ferry gc`` leaves no blob and no unfinished multipart upload behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
import yaml

import ferry.model
from ferry.errors import StorageUnavailable
from ferry.model.manifest import MANIFEST_FILE
from tests.integration.conftest import start_ferry, stop_server
from tests.registry_fixtures import S3_ENV, _wait_for_port, free_port, unavailable

pytestmark = pytest.mark.integration
BUCKET = "frozen"
MIB = 1024 * 1024
DEADLINE = 4.0
DEADLINES = {
    "FERRY_S3_CONNECT_TIMEOUT_SECONDS": "1",
    "FERRY_S3_READ_TIMEOUT_SECONDS": "1",
    "FERRY_S3_MAX_ATTEMPTS": "2",
    "FERRY_S3_TRANSFER_DEADLINE_SECONDS": str(DEADLINE),
}


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A private moto_server (SIGSTOP must not stall other tests' S3)."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        unavailable(f"moto_server is not installed next to {sys.executable}")
    port = free_port()
    log = tmp_path / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the venv's own moto_server
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **S3_ENV},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, process, log)
        yield process, endpoint, log
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _bundle_with_large_file(tmp_path: Path) -> Path:
    """A real bundle plus a 64 MiB file (4 multipart parts), as an uncompressed tar."""
    from sklearn.linear_model import LogisticRegression

    from tests.pickle_cases import iris_frame

    frame, target = iris_frame()
    features = frame.drop(columns="color")
    bundle = tmp_path / "bundle"
    ferry.model.save(LogisticRegression(max_iter=200).fit(features, target), bundle)
    large = bundle / "model" / "weights.bin"
    large.write_bytes(os.urandom(64 * MIB))
    manifest_path = bundle / MANIFEST_FILE
    manifest = yaml.safe_load(manifest_path.read_text())
    digest = hashlib.sha256(large.read_bytes()).hexdigest()
    manifest["files"].insert(0, {"path": "model/weights.bin", "sha256": digest, "size": 64 * MIB})
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(bundle).as_posix())
    return archive


def _blobs(client: object, prefix: str) -> tuple[list[str], int]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    uploads = client.list_multipart_uploads(Bucket=BUCKET)  # type: ignore[attr-defined]
    return [o["Key"] for o in listed.get("Contents", [])], len(uploads.get("Uploads", []))


def test_a_frozen_s3_fails_the_upload_in_bounded_time_and_gc_leaves_no_orphan(
    tmp_path: Path, moto: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    s3, endpoint, moto_log = moto
    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())
    client.create_bucket(Bucket=BUCKET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(
        {
            **S3_ENV,
            **DEADLINES,
            "FERRY_HOME": str(tmp_path / "home"),
            "FERRY_ARTIFACTS": f"s3://{BUCKET}/site",
            "FERRY_S3_ENDPOINT_URL": endpoint,
        }
    )
    archive = _bundle_with_large_file(tmp_path)
    process, url = start_ferry(["server", "--workers", "1"], log=tmp_path / "server.log", env=env)
    try:
        with ThreadPoolExecutor(1) as pool:
            upload = pool.submit(
                httpx.post,
                f"{url}/api/v1/models/big/versions",
                files={"bundle": ("bundle.tar", archive.read_bytes())},
                timeout=120,
            )
            deadline = time.monotonic() + 90
            while "?uploads" not in moto_log.read_text(errors="replace"):
                assert time.monotonic() < deadline, "the multipart upload never began"
                assert not upload.done(), upload.result().text
                time.sleep(0.005)
            s3.send_signal(signal.SIGSTOP)
            frozen = time.monotonic()
            response = upload.result(timeout=60)
            elapsed = time.monotonic() - frozen
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "storage_unavailable", error
        assert "did not" in error["message"]
        assert elapsed < DEADLINE + 3.0, elapsed
        time.sleep(3.0)  # every stuck request of the server has passed its read timeout
        s3.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # moto answers what it had buffered
        models = httpx.get(f"{url}/api/v1/models", timeout=10).json()
        assert models["total"] == 0  # the model row is made with its first version, or never
        gc = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", "gc", "--grace", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert "MISSING" not in gc.stdout, gc.stdout
        assert _blobs(client, "site/") == ([], 0), gc.stdout
        again = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ferry", "gc", "--grace", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert "deleted 0 (0 bytes)" in again.stdout, again.stdout
        assert "swept 0 incomplete" in again.stdout, again.stdout
    finally:
        s3.send_signal(signal.SIGCONT)
        stop_server(process)


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


def test_every_store_call_on_a_frozen_s3_fails_in_bounded_time(
    tmp_path: Path,
    moto: tuple[subprocess.Popen[bytes], str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Head, download, single-part upload, delete and list each raise StorageUnavailable
    within their deadline once the server is frozen, and work again after SIGCONT."""
    from ferry.registry.artifacts.s3 import S3Deadlines, S3Store

    s3, endpoint, _log = moto
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint, **_credentials()).create_bucket(Bucket=BUCKET)
    deadlines = S3Deadlines(
        connect_seconds=0.5, read_seconds=0.5, max_attempts=2, transfer_seconds=2.0
    )
    store = S3Store(BUCKET, "site", endpoint_url=endpoint, deadlines=deadlines)
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    store.put("a/blob", small)
    calls = {
        "stat": lambda: store.stat("a/blob"),
        "get": lambda: store.get("a/blob", tmp_path / "out.bin"),
        "put": lambda: store.put("a/other", small),
        "touch": lambda: store.touch("a/blob"),
        "delete": lambda: store.delete("a/blob"),
        "list": lambda: list(store.list("a/")),
    }
    s3.send_signal(signal.SIGSTOP)
    try:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                call()
            # two attempts of 0.5 s plus botocore's backoff, or the 2 s transfer deadline
            assert time.monotonic() - started < 4.0, name
    finally:
        s3.send_signal(signal.SIGCONT)
    time.sleep(1.0)  # moto answers what it had buffered (the delete may land now)
    store.put("a/after", small)  # the same store works again: no call is left stuck
    info = store.stat("a/after")
    assert info is not None
    assert info.size == 1000
    store.close()
