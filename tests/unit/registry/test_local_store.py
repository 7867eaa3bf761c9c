"""The local-folder artifact store and the store table."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ferry.errors import BlobNotFound, ConfigError, StorageError
from ferry.registry import open_artifact_store
from ferry.registry.artifacts.local import TEMP_MARKER, LocalStore


def test_scheme_table(tmp_path: Path) -> None:
    assert isinstance(open_artifact_store(str(tmp_path / "a")), LocalStore)
    store = open_artifact_store((tmp_path / "b").as_uri())
    assert isinstance(store, LocalStore)
    assert store.url == (tmp_path / "b").resolve().as_uri()
    with pytest.raises(ConfigError, match="known schemes"):
        open_artifact_store("gs://bucket/x")
    with pytest.raises(ConfigError, match="local path"):
        open_artifact_store("file://otherhost/x")


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    store.put("sha256/ab/blob", source)
    assert store.exists("sha256/ab/blob")
    info = store.stat("sha256/ab/blob")
    assert info is not None
    assert info.size == source.stat().st_size
    target = tmp_path / "out.bin"
    store.get("sha256/ab/blob", target)
    assert target.read_bytes() == source.read_bytes()
    assert [i.key for i in store.list("sha256/")] == ["sha256/ab/blob"]
    assert list(store.list("other/")) == []
    store.delete("sha256/ab/blob")
    store.delete("sha256/ab/blob")  # missing is fine
    assert not store.exists("sha256/ab/blob")
    assert store.stat("sha256/ab/blob") is None
    assert not store.touch("sha256/ab/blob")
    with pytest.raises(BlobNotFound):
        store.get("sha256/ab/blob", target)


def test_touch_refreshes_modified_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "src").write_bytes(b"x")
    store.put("k/v", tmp_path / "src")
    old = time.time() - 7200
    os.utime(tmp_path / "k" / "v", (old, old))
    before = store.stat("k/v")
    assert before is not None
    assert store.touch("k/v")
    after = store.stat("k/v")
    assert after is not None
    assert after.modified_at > before.modified_at + timedelta(hours=1)


def test_put_replaces_atomically_and_leaves_no_temp(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for content in (b"one", b"two"):
        (tmp_path / "src").write_bytes(content)
        store.put("a/b", tmp_path / "src")
    assert (tmp_path / "store" / "a" / "b").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "store" / "a").iterdir()] == ["b"]


def test_failed_put_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StorageError):
        store.put("a/b", tmp_path / "missing-source")
    assert not store.exists("a/b")
    assert list((tmp_path / "store").rglob(f"*{TEMP_MARKER}*")) == []


def test_sweep_incomplete_removes_old_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "sha256" / "ab").mkdir(parents=True)
    stale = tmp_path / "sha256" / "ab" / f".blob{TEMP_MARKER}1234"
    fresh = tmp_path / "sha256" / "ab" / f".blob{TEMP_MARKER}5678"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert list(store.list()) == []  # temp files are not blobs
    assert store.sweep_incomplete(datetime.now(UTC) - timedelta(hours=1)) == 1
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError, match="invalid artifact key"):
        LocalStore(tmp_path).exists(key)


def test_put_checks_the_bytes_it_wrote(tmp_path: Path) -> None:
    import hashlib

    from ferry.errors import BundleError

    store = LocalStore(tmp_path / "store")
    (tmp_path / "src").write_bytes(b"payload")
    store.put("a/b", tmp_path / "src", sha256=hashlib.sha256(b"payload").hexdigest())
    assert store.exists("a/b")
    with pytest.raises(BundleError, match="changed while it was stored"):
        store.put("a/c", tmp_path / "src", sha256="0" * 64)
    assert not store.exists("a/c")
    assert list((tmp_path / "store").rglob(f"*{TEMP_MARKER}*")) == []
