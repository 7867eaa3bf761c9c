"""Bundle identity, path safety and archives."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from ferry.errors import BundleError, PayloadTooLarge
from ferry.model.manifest import FileEntry, read_manifest
from ferry.registry import UnpackLimits, content_sha256, unpack_archive, write_archive
from ferry.registry.bundles import check_paths
from tests.registry_fixtures import bundle_variant


def test_content_digest_ignores_name_and_time(iris_bundle: Path) -> None:
    manifest = read_manifest(iris_bundle)
    renamed = manifest.model_copy(update={"name": "other", "description": "changed"})
    assert content_sha256(renamed) == content_sha256(manifest)
    files = [*manifest.files[:-1], manifest.files[-1].model_copy(update={"sha256": "0" * 64})]
    assert content_sha256(manifest.model_copy(update={"files": files})) != content_sha256(manifest)
    options = manifest.model_copy(update={"flavor_options": {"method": "x"}})
    assert content_sha256(options) != content_sha256(manifest)


def test_variant_bundles_differ(iris_bundle: Path, tmp_path: Path) -> None:
    a = read_manifest(bundle_variant(iris_bundle, tmp_path / "a", "a"))
    b = read_manifest(bundle_variant(iris_bundle, tmp_path / "b", "b"))
    assert content_sha256(a) != content_sha256(b)


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\b", "ferry.yaml", ""]
)
def test_unsafe_paths_are_refused(iris_bundle: Path, path: str) -> None:
    manifest = read_manifest(iris_bundle)
    files = [*manifest.files, FileEntry(path=path, sha256="0" * 64, size=1)]
    with pytest.raises(BundleError):
        check_paths(manifest.model_copy(update={"files": files}))


def test_artifact_must_be_listed(iris_bundle: Path) -> None:
    manifest = read_manifest(iris_bundle)
    check_paths(manifest)
    with pytest.raises(BundleError, match="artifact"):
        check_paths(manifest.model_copy(update={"artifact": "model/other.pkl"}))
    with pytest.raises(BundleError, match="twice"):
        check_paths(manifest.model_copy(update={"files": manifest.files * 2}))


def test_archive_round_trip(iris_bundle: Path, tmp_path: Path) -> None:
    archive = write_archive(iris_bundle, tmp_path / "out" / "iris.tar.gz")
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    assert "ferry.yaml" in names
    assert "model/model.joblib" in names
    unpacked = unpack_archive(archive, tmp_path / "unpacked")
    for path in iris_bundle.rglob("*"):
        if path.is_file():
            copy = unpacked / path.relative_to(iris_bundle)
            assert copy.read_bytes() == path.read_bytes()
    assert list(tmp_path.glob(".unpacked*")) == []


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/../../evil"])
def test_unpack_refuses_escaping_paths(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(tarfile.TarInfo(name), b"x")])
    with pytest.raises(BundleError):
        unpack_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "evil").exists()


def test_unpack_refuses_links_and_oversize(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(BundleError, match="regular file"):
        unpack_archive(_tar(tmp_path / "l.tar.gz", [(link, b"")]), tmp_path / "d1")
    big = _tar(tmp_path / "b.tar.gz", [(tarfile.TarInfo("model/x"), b"x" * 2000)])
    limits = UnpackLimits(max_bytes=1000, ratio_floor=1000)
    with pytest.raises(PayloadTooLarge, match="more than 1000 bytes"):
        unpack_archive(big, tmp_path / "d2", limits=limits)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(BundleError, match="not a readable tar"):
        unpack_archive(tmp_path / "junk.tar.gz", tmp_path / "d3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz", "junk.tar.gz", "l.tar.gz"]


def test_unpack_into_existing_folder_is_refused(iris_bundle: Path, tmp_path: Path) -> None:
    archive = write_archive(iris_bundle, tmp_path / "iris.tar.gz")
    shutil.copytree(iris_bundle, tmp_path / "there")
    with pytest.raises(BundleError, match="already exists"):
        unpack_archive(archive, tmp_path / "there")
