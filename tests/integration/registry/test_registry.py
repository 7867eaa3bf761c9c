"""Models, versions, resolution, aliases, tags and metrics, on both backends."""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib
import pandas as pd
import pytest

import ferry.model
from ferry.errors import (
    AliasNotFound,
    BlobNotFound,
    BundleError,
    InvalidName,
    InvalidRequest,
    ModelExists,
    ModelNotFound,
    StorageError,
    VersionNotFound,
)
from ferry.model.manifest import read_manifest
from ferry.registry import Lineage, Registry, content_sha256
from tests.registry_fixtures import bundle_variant

pytestmark = pytest.mark.integration


def test_register_get_and_list(registry: Registry, iris_bundle: Path) -> None:
    manifest = read_manifest(iris_bundle)
    version = registry.register(
        iris_bundle,
        "iris",
        metrics={"acc": 0.97},
        params={"C": "1.0"},
        tags={"team": "vision"},
        description="first",
        actor="alice",
        lineage=Lineage(data_fingerprint="ab" * 32, data_rows=150, code_ref="abc123", run_id="r1"),
    )
    assert (version.model, version.version) == ("iris", 1)
    assert version.sha256 == content_sha256(manifest)
    assert version.flavor == "sklearn"
    assert version.signature == manifest.signature
    assert version.files == manifest.files
    assert version.size == sum(f.size for f in manifest.files)
    assert version.requirements == manifest.requirements
    assert version.metrics == {"acc": 0.97}
    assert version.params == {"C": "1.0"}
    assert version.tags == {"team": "vision"}
    assert version.description == "first"
    assert version.created_by == "alice"
    assert version.lineage.data_rows == 150
    assert version.lineage.code_ref == "abc123"
    assert version.manifest.name == "iris"
    assert version.manifest.flavor == "sklearn"
    assert registry.get_version("iris", 1) == version
    model = registry.get_model("iris")
    assert model.latest_version == 1
    assert model.aliases == {}
    page = registry.list_versions("iris")
    assert (page.total, [v.version for v in page.items]) == (1, [1])
    assert [m.name for m in registry.list_models().items] == ["iris"]


def test_reregistering_identical_content_is_idempotent(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    first = registry.register(iris_bundle, "iris")
    counts = registry.metadata.row_counts()
    blobs = sorted(b.key for b in registry.artifacts.list())
    again = registry.register(iris_bundle, "iris", metrics={"acc": 0.1}, actor="bob")
    assert again == first
    # a renamed copy with the same files and serving settings is the same content
    copy = tmp_path / "copy"
    manifest = read_manifest(iris_bundle)
    import shutil

    shutil.copytree(iris_bundle, copy)
    manifest.model_copy(update={"name": "renamed", "description": "x"}).dump(copy / "ferry.yaml")
    assert registry.register(copy, "iris").version == 1
    assert registry.metadata.row_counts() == counts
    assert sorted(b.key for b in registry.artifacts.list()) == blobs
    # the same content under another model name is that model's own version 1
    assert registry.register(iris_bundle, "iris-copy").version == 1
    assert sorted(b.key for b in registry.artifacts.list()) == blobs  # blobs are shared


def test_versions_are_numbered_in_order(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    for i in range(1, 4):
        bundle = bundle_variant(iris_bundle, tmp_path / f"v{i}", f"salt-{i}")
        assert registry.register(bundle, "iris").version == i
    page = registry.list_versions("iris", limit=2)
    assert (page.total, [v.version for v in page.items]) == (3, [3, 2])
    assert [v.version for v in registry.list_versions("iris", limit=2, offset=2).items] == [1]
    assert registry.get_model("iris").latest_version == 3


def test_resolve_refs(registry: Registry, iris_bundle: Path, tmp_path: Path) -> None:
    registry.register(iris_bundle, "iris")
    registry.register(bundle_variant(iris_bundle, tmp_path / "v2", "2"), "iris")
    assert registry.resolve("iris").version == 2  # latest when no production alias
    registry.set_alias("iris", "production", 1)
    registry.set_alias("iris", "staging", 2)
    assert registry.resolve("iris").version == 1  # production wins
    assert registry.resolve("iris@staging").version == 2
    assert registry.resolve("iris/2").version == 2
    assert registry.resolve("iris:1").version == 1
    assert registry.resolve("iris", version=2).version == 2
    assert registry.resolve("iris", alias="staging").version == 2
    with pytest.raises(AliasNotFound):
        registry.resolve("iris@canary")
    with pytest.raises(VersionNotFound):
        registry.resolve("iris/3")
    with pytest.raises(ModelNotFound):
        registry.resolve("nope")
    with pytest.raises(InvalidRequest):
        registry.resolve("iris/1", alias="staging")
    registry.create_model("empty")
    with pytest.raises(VersionNotFound, match="no versions"):
        registry.resolve("empty")


def test_materialize_round_trip(
    registry: Registry,
    iris_bundle: Path,
    tmp_path: Path,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    registry.register(iris_bundle, "flowers")
    dest = registry.materialize("flowers", 1, tmp_path / "out")
    manifest = read_manifest(dest)
    assert (manifest.name, manifest.version) == ("flowers", "1")
    for entry in manifest.files:
        assert (dest / entry.path).read_bytes() == (iris_bundle / entry.path).read_bytes()
    X, _ = iris_data
    loaded = ferry.model.load(dest)
    original = joblib.load(iris_bundle / "model" / "model.joblib")
    assert loaded.predict(X.head(10)).tolist() == original.predict(X.head(10)).tolist()
    with pytest.raises(BundleError, match="already exists"):
        registry.materialize("flowers", 1, dest)
    assert registry.materialize("flowers", 1, dest, overwrite=True) == dest
    archive = registry.archive("flowers", 1, tmp_path / "dl" / "flowers-1.tar.gz")
    assert archive.is_file()
    assert sorted(p.name for p in archive.parent.iterdir()) == ["flowers-1.tar.gz"]
    cached = registry.checkout("flowers", 1, tmp_path / "cache")
    assert cached == tmp_path / "cache" / "flowers" / "1"
    assert registry.checkout("flowers", 1, tmp_path / "cache") == cached


def test_materialize_detects_a_corrupt_blob(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    version = registry.register(iris_bundle, "iris")
    entry = next(f for f in version.files if f.path.endswith(".joblib"))
    key = f"sha256/{entry.sha256[:2]}/{entry.sha256}"
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.write_bytes(b"not the model" * 10)
    registry.artifacts.put(key, corrupt)  # overwrite the blob behind the registry's back
    # the storage's fault, not the caller's: a 500 with a fixed message on a server
    with pytest.raises(StorageError, match="does not match its sha256") as info:
        registry.materialize("iris", 1, tmp_path / "out")
    assert info.value.details["path"] == entry.path
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corrupt"]  # no staging folder left
    registry.artifacts.delete(key)
    with pytest.raises(BlobNotFound, match="missing from the artifact store"):
        registry.materialize("iris", 1, tmp_path / "out")


def test_models_crud(registry: Registry, iris_bundle: Path) -> None:
    created = registry.create_model("iris", description="flowers", tags={"team": "a"}, actor="al")
    assert (created.description, created.tags, created.latest_version) == (
        "flowers",
        {"team": "a"},
        None,
    )
    with pytest.raises(ModelExists):
        registry.create_model("iris")
    registry.create_model("iris_2", tags={"team": "b"})
    registry.create_model("irises")
    registry.create_model("wine", tags={"team": "a", "prod": ""})
    assert [m.name for m in registry.list_models(name_prefix="iris").items] == [
        "iris",
        "iris_2",
        "irises",
    ]
    assert [m.name for m in registry.list_models(name_prefix="iris_").items] == ["iris_2"]
    assert [m.name for m in registry.list_models(tag="team=a").items] == ["iris", "wine"]
    assert [m.name for m in registry.list_models(tag="prod").items] == ["wine"]
    page = registry.list_models(limit=2, offset=1)
    assert (page.total, [m.name for m in page.items]) == (4, ["iris_2", "irises"])
    updated = registry.update_model("iris", description="new", actor="bo")
    assert (updated.description, updated.tags) == ("new", {"team": "a"})
    assert registry.update_model("iris", tags={"x": "y"}).tags == {"x": "y"}
    assert updated.updated_at >= created.updated_at
    registry.register(iris_bundle, "iris")
    registry.set_alias("iris", "production", 1)
    registry.delete_model("iris", actor="carol")
    with pytest.raises(ModelNotFound):
        registry.get_model("iris")
    counts = registry.metadata.row_counts()
    assert counts["versions"] == counts["aliases"] == counts["version_files"] == 0
    # the model can come back, numbering from 1; its old blobs are reused
    assert registry.register(iris_bundle, "iris").version == 1
    actions = [(e.action, e.target, e.actor) for e in registry.audit(limit=3)]
    assert actions == [
        ("version.create", "iris/1", "anonymous"),
        ("model.create", "iris", "anonymous"),
        ("model.delete", "iris", "carol"),
    ]


def test_aliases_set_move_delete_and_history(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    registry.register(iris_bundle, "iris")
    registry.register(bundle_variant(iris_bundle, tmp_path / "v2", "2"), "iris")
    record = registry.set_alias("iris", "production", 1, actor="alice")
    assert (record.alias, record.version, record.updated_by) == ("production", 1, "alice")
    assert registry.set_alias("iris", "production", 1, actor="bob").updated_by == "alice"  # no-op
    moved = registry.set_alias("iris", "production", 2, actor="bob")
    assert (moved.version, moved.updated_by) == (2, "bob")
    registry.set_alias("iris", "staging", 1)
    assert registry.get_model("iris").aliases == {"production": 2, "staging": 1}
    assert [(a.alias, a.version) for a in registry.list_aliases("iris")] == [
        ("production", 2),
        ("staging", 1),
    ]
    registry.delete_alias("iris", "staging", actor="carol")
    with pytest.raises(AliasNotFound):
        registry.delete_alias("iris", "staging")
    history = registry.alias_history("iris")
    assert [(e.alias, e.old_version, e.new_version, e.actor) for e in history] == [
        ("production", None, 1, "alice"),
        ("production", 1, 2, "bob"),
        ("staging", None, 1, "anonymous"),
        ("staging", 1, None, "carol"),
    ]
    assert len(registry.alias_history("iris", "production")) == 2
    assert registry.get_model("iris").aliases == {"production": 2}


def test_tags_and_metrics_search(registry: Registry, iris_bundle: Path, tmp_path: Path) -> None:
    for i, acc in enumerate([0.80, 0.91, 0.95], start=1):
        bundle = bundle_variant(iris_bundle, tmp_path / f"v{i}", str(i))
        registry.register(bundle, "iris", metrics={"acc": acc}, tags={"stage": "exp"})
    registry.set_tags("iris", 3, {"stage": "candidate", "owner": "al"})
    registry.log_metrics("iris", 1, {"acc": 0.99, "f1": 0.5})

    def versions(**filters: str) -> list[int]:
        return [v.version for v in registry.list_versions("iris", **filters).items]

    assert versions(metric="acc>=0.9") == [3, 2, 1]
    assert versions(metric="acc<0.95") == [2]
    assert versions(metric="acc==0.95") == [3]
    assert versions(metric="f1>0") == [1]
    assert versions(tag="stage=exp") == [2, 1]
    assert versions(tag="owner") == [3]
    assert versions(tag="stage=exp", metric="acc>0.95") == [1]
    assert registry.get_version("iris", 1).metrics == {"acc": 0.99, "f1": 0.5}
    replaced = registry.set_tags("iris", 3, {"only": "this"}, replace=True)
    assert replaced.tags == {"only": "this"}
    with pytest.raises(VersionNotFound):
        registry.set_tags("iris", 9, {"a": "b"})
    with pytest.raises(ModelNotFound):
        registry.log_metrics("nope", 1, {"a": 1.0})


def test_audit_log_records_every_write(registry: Registry, iris_bundle: Path) -> None:
    registry.create_model("iris", actor="alice")
    registry.register(iris_bundle, "iris", actor="bob", create_model=False)
    registry.set_alias("iris", "production", 1, actor="carol")
    registry.set_tags("iris", 1, {"a": "b"}, actor="dan")
    registry.log_metrics("iris", 1, {"acc": 1.0}, actor="eve")
    registry.delete_alias("iris", "production", actor="fay")
    registry.update_model("iris", description="d", actor="gus")
    events = registry.audit()
    assert [(e.action, e.actor) for e in reversed(events)] == [
        ("model.create", "alice"),
        ("version.create", "bob"),
        ("alias.set", "carol"),
        ("version.tags", "dan"),
        ("version.metrics", "eve"),
        ("alias.delete", "fay"),
        ("model.update", "gus"),
    ]
    assert events[-2].details["sha256"] == registry.get_version("iris", 1).sha256
    assert [e.action for e in registry.audit(limit=2, offset=1)] == [
        "alias.delete",
        "version.metrics",
    ]


def test_data_fingerprint_in_lineage(
    registry: Registry, iris_bundle: Path, tmp_path: Path, iris_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    from ferry.registry import fingerprint_data

    X, _ = iris_data
    X.to_csv(tmp_path / "train.csv", index=False)
    digest, rows = fingerprint_data(tmp_path / "train.csv")
    version = registry.register(
        iris_bundle, "iris", lineage=Lineage(data_fingerprint=digest, data_rows=rows)
    )
    assert (
        version.lineage.data_fingerprint
        == hashlib.sha256((tmp_path / "train.csv").read_bytes()).hexdigest()
    )
    assert version.lineage.data_rows == len(X)


def test_bad_names_raise_invalid_name(registry: Registry, iris_bundle: Path) -> None:
    for bad in ("a/b", "..", "../etc", "x" * 200, ""):
        with pytest.raises(InvalidName):
            registry.register(iris_bundle, bad)
    with pytest.raises(InvalidName):
        registry.create_model("a/b")
    registry.register(iris_bundle, "iris")
    with pytest.raises(InvalidName, match="all digits"):
        registry.set_alias("iris", "123", 1)
    with pytest.raises(InvalidName):
        registry.set_alias("iris", "pro/duction", 1)
