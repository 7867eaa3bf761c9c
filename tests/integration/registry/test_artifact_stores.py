"""The artifact store contract, on the local folder and on a real S3-compatible server."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ferry.errors import BlobNotFound, ConfigError, StorageError
from ferry.registry import ArtifactStore, Registry, open_artifact_store
from tests.registry_fixtures import free_port

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
def store(registry: Registry) -> ArtifactStore:
    return registry.artifacts


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MIB))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def test_put_get_stat_list_delete(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "small"
    source.write_bytes(b"hello blob")
    store.put("sha256/aa/one", source)
    store.put("sha256/bb/two", source)
    store.put("other/three", source)
    assert store.exists("sha256/aa/one")
    assert not store.exists("sha256/aa/nope")
    info = store.stat("sha256/aa/one")
    assert info is not None
    assert info.size == 10
    assert info.key == "sha256/aa/one"
    assert abs(info.modified_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert sorted(i.key for i in store.list("sha256/")) == ["sha256/aa/one", "sha256/bb/two"]
    assert sorted(i.key for i in store.list()) == ["other/three", "sha256/aa/one", "sha256/bb/two"]
    target = tmp_path / "back"
    store.get("sha256/bb/two", target)
    assert target.read_bytes() == b"hello blob"
    store.delete("sha256/aa/one")
    store.delete("sha256/aa/one")
    assert store.stat("sha256/aa/one") is None
    with pytest.raises(BlobNotFound):
        store.get("sha256/aa/one", tmp_path / "x")


def test_large_file_streams_in_parts(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big"
    digest = _random_file(source, 40 * MIB + 123)  # three 16 MiB parts on S3
    store.put("sha256/cc/big", source)
    info = store.stat("sha256/cc/big")
    assert info is not None
    assert info.size == 40 * MIB + 123
    target = tmp_path / "big.back"
    store.get("sha256/cc/big", target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


def test_touch_and_sweep(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.write_bytes(b"x")
    store.put("sha256/dd/t", source)
    before = store.stat("sha256/dd/t")
    time.sleep(1.1)
    assert store.touch("sha256/dd/t")
    after = store.stat("sha256/dd/t")
    assert before is not None
    assert after is not None
    assert after.modified_at > before.modified_at
    assert after.size == 1
    assert not store.touch("sha256/dd/missing")
    assert store.sweep_incomplete(datetime.now(UTC)) == 0


def test_unknown_bucket_and_unreachable_endpoint(s3_endpoint: str) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_artifact_store("s3://no-such-bucket-here/x", endpoint_url=s3_endpoint)
    with pytest.raises(ConfigError, match="names no bucket"):
        open_artifact_store("s3:///x", endpoint_url=s3_endpoint)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(StorageError, match="cannot reach S3"):
        open_artifact_store("s3://ferry-test/x", endpoint_url=dead)


def test_s3_blobs_keep_their_digest_when_touched(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    import boto3

    from ferry.registry.artifacts.s3 import S3Store

    store = S3Store(s3_bucket, "touch-test", endpoint_url=s3_endpoint)
    source = tmp_path / "s"
    source.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    store.put("sha256/ba/x", source, sha256=digest)
    assert store.touch("sha256/ba/x")
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(
        Bucket=s3_bucket, Key="touch-test/sha256/ba/x"
    )
    assert head["Metadata"]["sha256"] == digest
    store.close()
