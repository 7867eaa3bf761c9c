"""Atomic, gap-free, idempotent registration; crashes leave orphans only; gc sweeps them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ferry.errors import (
    AliasNotFound,
    BundleError,
    InvalidName,
    InvalidRequest,
    ModelNotFound,
    VersionNotFound,
)
from ferry.model.manifest import MANIFEST_FILE, read_manifest
from ferry.registry import Registry
from ferry.registry.artifacts.local import TEMP_MARKER, LocalStore
from ferry.registry.blobs import blob_key
from tests.registry_fixtures import Backend, bundle_variant

pytestmark = pytest.mark.integration

CONCURRENT = 20
BIG_BYTES = 64 * 1024 * 1024


def _snapshot(registry: Registry) -> tuple[dict[str, int], list[str]]:
    return registry.metadata.row_counts(), sorted(b.key for b in registry.artifacts.list())


def _run_threads(count: int, work: object) -> list[object]:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = work(i)  # type: ignore[operator]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]
    return results


def test_concurrent_registrations_get_gap_free_numbers(
    registry_backend: Backend, registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    """20 registrations of different content to one (new) model, each on its own connection."""
    bundles = [
        bundle_variant(iris_bundle, tmp_path / f"b{i}", f"concurrent-{i}")
        for i in range(CONCURRENT)
    ]
    registries = [registry_backend.open(migrate=False) for _ in range(CONCURRENT)]
    try:
        results = _run_threads(
            CONCURRENT, lambda i: registries[i].register(bundles[i], "iris", actor=f"u{i}")
        )
    finally:
        for opened in registries:
            opened.close()
    numbers = sorted(r.version for r in results)  # type: ignore[attr-defined]
    assert numbers == list(range(1, CONCURRENT + 1))
    page = registry.list_versions("iris", limit=100)
    assert page.total == CONCURRENT
    assert len({v.sha256 for v in page.items}) == CONCURRENT
    assert registry.get_model("iris").latest_version == CONCURRENT
    assert registry.metadata.row_counts()["models"] == 1
    creates = [e for e in registry.audit(limit=1000) if e.action == "version.create"]
    assert sorted(e.target for e in creates) == sorted(f"iris/{n}" for n in numbers)


_RACER = """
import sys, time
from pathlib import Path
from ferry.registry import Registry
go, bundles = Path(sys.argv[1]), sys.argv[2:]
registry = Registry.from_settings(migrate=False)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
for bundle in bundles:
    print("version", registry.register(Path(bundle), "iris").version, flush=True)
"""


def test_concurrent_registrations_from_several_processes(
    registry_backend: Backend, registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    """Four processes (four servers, say) register five versions each at the same moment."""
    processes, per_process = 4, 5
    go = tmp_path / "go"
    children = []
    for p in range(processes):
        bundles = [
            str(bundle_variant(iris_bundle, tmp_path / f"p{p}-{i}", f"proc-{p}-{i}"))
            for i in range(per_process)
        ]
        log = tmp_path / f"racer-{p}.log"
        with log.open("wb") as out:
            child = subprocess.Popen(  # noqa: S603 - our own code
                [sys.executable, "-c", _RACER, str(go), *bundles],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **registry_backend.ferry_env},
            )
        children.append((child, log))
    try:
        deadline = time.monotonic() + 120
        while not all("ready" in log.read_text() for _, log in children):
            assert all(c.poll() is None for c, _ in children), [g.read_text() for _, g in children]
            assert time.monotonic() < deadline, "the racers did not start within 120 s"
            time.sleep(0.05)
        go.touch()
        for child, log in children:
            assert child.wait(timeout=300) == 0, log.read_text()
    finally:
        for child, _ in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    numbers = [
        int(line.split()[1])
        for _, log in children
        for line in log.read_text().splitlines()
        if line.startswith("version ")
    ]
    assert sorted(numbers) == list(range(1, processes * per_process + 1))
    assert registry.list_versions("iris").total == processes * per_process


def test_concurrent_identical_registrations_make_one_version(
    registry_backend: Backend, registry: Registry, iris_bundle: Path
) -> None:
    count = 8
    registries = [registry_backend.open(migrate=False) for _ in range(count)]
    try:
        results = _run_threads(count, lambda i: registries[i].register(iris_bundle, "iris"))
    finally:
        for opened in registries:
            opened.close()
    assert {(r.version, r.sha256) for r in results} == {(1, results[0].sha256)}  # type: ignore[attr-defined]
    assert registry.metadata.row_counts()["versions"] == 1


_CHILD = """
import sys
from pathlib import Path
from ferry.registry import Registry
registry = Registry.from_settings(migrate=False)
print("registering", flush=True)
registry.register(Path(sys.argv[1]), "iris")
print("registered", flush=True)
"""


def _write_in_flight(registry: Registry) -> bool:
    """A blob is being written right now: a temp file, or an unfinished multipart upload."""
    store = registry.artifacts
    if isinstance(store, LocalStore):
        return any(TEMP_MARKER in p.name for p in store.root.rglob("*"))
    client = store._client  # type: ignore[attr-defined]
    uploads = client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)  # type: ignore[attr-defined]
    return bool(uploads.get("Uploads"))


def test_killed_registration_leaves_no_version_and_gc_sweeps(
    registry_backend: Backend, registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    first = registry.register(iris_bundle, "iris")
    registry.set_alias("iris", "production", 1)
    big = bundle_variant(iris_bundle, tmp_path / "big", "big", extra_bytes=BIG_BYTES)
    big_manifest = read_manifest(big)
    assert sum(f.size for f in big_manifest.files) >= 50 * 1024 * 1024
    counts_before, blobs_before = _snapshot(registry)

    log = tmp_path / "child.log"
    with log.open("wb") as out:
        child = subprocess.Popen(  # noqa: S603 - our own code
            [sys.executable, "-c", _CHILD, str(big)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **registry_backend.ferry_env},
        )
    deadline = time.monotonic() + 120
    try:
        while not _write_in_flight(registry):
            if child.poll() is not None:
                pytest.fail(f"the registration ended before it could be killed:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no upload started within 120 s:\n{log.read_text()}")
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "registered" not in log.read_text()

    # nothing visible, nothing in the database changed, no row points at a missing blob
    assert registry.metadata.row_counts() == counts_before
    assert registry.get_model("iris").latest_version == 1
    assert registry.resolve("iris").version == 1
    referenced = registry.metadata.referenced_blobs()
    assert all(registry.artifacts.exists(blob_key(d)) for d in referenced)

    # the grace period protects blobs that may belong to a registration still in flight
    kept = registry.gc(grace_seconds=3600)
    assert kept.deleted == []
    assert kept.missing == []
    time.sleep(1.1)  # S3 timestamps have one-second resolution
    swept = registry.gc(grace_seconds=0)
    assert swept.missing == []
    # what the kill left: the half-written big file (moto dates every multipart upload in
    # 2010, so on S3 the first sweep may already have removed it) or, when the write finished
    # between being seen and the kill (a loaded machine), the whole blob with no version
    assert kept.incomplete_removed + swept.incomplete_removed + len(swept.deleted) >= 1
    orphans = {blob_key(f.sha256) for f in big_manifest.files} - set(blobs_before)
    assert set(swept.deleted) <= orphans
    assert not _write_in_flight(registry)
    assert sorted(b.key for b in registry.artifacts.list()) == blobs_before
    assert sorted(blobs_before) == sorted(blob_key(d) for d in referenced)

    # the store is consistent: the same bundle registers cleanly as the next number
    again = registry.register(big, "iris")
    assert again.version == 2
    out = registry.materialize("iris", 2, tmp_path / "out")
    assert (out / "model" / "big.bin").stat().st_size == BIG_BYTES
    assert registry.get_version("iris", 1) == first


def test_gc_keeps_referenced_and_recent_blobs(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    version = registry.register(iris_bundle, "iris")
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(os.urandom(1000))
    import hashlib

    orphan_key = blob_key(hashlib.sha256(orphan.read_bytes()).hexdigest())
    registry.artifacts.put(orphan_key, orphan)
    report = registry.gc(grace_seconds=3600)
    assert report.deleted == []
    assert report.kept_recent == 1
    assert report.referenced == len({f.sha256 for f in version.files})
    time.sleep(1.1)
    report = registry.gc(grace_seconds=0)
    assert report.deleted == [orphan_key]
    assert report.bytes_freed == 1000
    assert not registry.artifacts.exists(orphan_key)
    assert all(registry.artifacts.exists(blob_key(f.sha256)) for f in version.files)
    # a deleted model's blobs go once gc runs
    registry.delete_model("iris")
    time.sleep(1.1)
    report = registry.gc(grace_seconds=0)
    assert len(report.deleted) == len({f.sha256 for f in version.files})
    assert list(registry.artifacts.list()) == []


def test_gc_reports_missing_blobs(registry: Registry, iris_bundle: Path) -> None:
    version = registry.register(iris_bundle, "iris")
    key = blob_key(version.files[0].sha256)
    registry.artifacts.delete(key)
    assert registry.gc(grace_seconds=0).missing == [key]


def _corrupt_copy(source: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(source, dest)
    with (dest / "model" / "model.joblib").open("ab") as out:
        out.write(b"tampered")
    return dest


def test_bad_input_changes_nothing(registry: Registry, iris_bundle: Path, tmp_path: Path) -> None:
    registry.register(iris_bundle, "iris")
    registry.set_alias("iris", "production", 1)
    before = _snapshot(registry)
    variant = bundle_variant(iris_bundle, tmp_path / "variant", "v")

    missing_file = bundle_variant(iris_bundle, tmp_path / "missing", "m")
    (missing_file / "extra" / "salt.txt").unlink()
    bad_yaml = bundle_variant(iris_bundle, tmp_path / "badyaml", "y")
    (bad_yaml / MANIFEST_FILE).write_text("flavor: [unclosed", encoding="utf-8")
    escaping = bundle_variant(iris_bundle, tmp_path / "escape", "e")
    data = yaml.safe_load((escaping / MANIFEST_FILE).read_text())
    data["files"].append({"path": "../outside.txt", "sha256": "0" * 64, "size": 1})
    (escaping / MANIFEST_FILE).write_text(yaml.safe_dump(data))

    attempts = [
        (InvalidName, lambda: registry.register(variant, "a/b")),
        (InvalidName, lambda: registry.register(variant, "..")),
        (ModelNotFound, lambda: registry.register(variant, "ghost", create_model=False)),
        (
            BundleError,
            lambda: registry.register(_corrupt_copy(iris_bundle, tmp_path / "c"), "iris"),
        ),
        (BundleError, lambda: registry.register(missing_file, "iris")),
        (BundleError, lambda: registry.register(bad_yaml, "iris")),
        (BundleError, lambda: registry.register(escaping, "iris")),
        (BundleError, lambda: registry.register(tmp_path / "nothing-here", "iris")),
        (InvalidRequest, lambda: registry.register(variant, "iris", metrics={"acc": float("inf")})),
        (InvalidName, lambda: registry.register(variant, "iris", tags={"bad key": "x"})),
        (InvalidRequest, lambda: registry.register(variant, "iris", actor="")),
        (VersionNotFound, lambda: registry.set_alias("iris", "production", 7)),
        (ModelNotFound, lambda: registry.set_alias("ghost", "production", 1)),
        (InvalidName, lambda: registry.set_alias("iris", "7", 1)),
        (AliasNotFound, lambda: registry.delete_alias("iris", "staging")),
        (VersionNotFound, lambda: registry.set_tags("iris", 2, {"a": "b"})),
        (VersionNotFound, lambda: registry.log_metrics("iris", 2, {"a": 1.0})),
        (ModelNotFound, lambda: registry.update_model("ghost", description="x")),
        (ModelNotFound, lambda: registry.delete_model("ghost")),
        (ModelNotFound, lambda: registry.get_version("ghost", 1)),
        (VersionNotFound, lambda: registry.get_version("iris", 5)),
        (InvalidRequest, lambda: registry.get_version("iris", 0)),
        (InvalidRequest, lambda: registry.list_versions("iris", metric="acc>>1")),
        (InvalidRequest, lambda: registry.list_models(limit=0)),
    ]
    for error, attempt in attempts:
        with pytest.raises(error):
            attempt()
        assert _snapshot(registry) == before, f"{error.__name__} changed the store"
    assert registry.get_model("iris").aliases == {"production": 1}
