"""Lineage: parent chains across models, and descendants."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.errors import ModelNotFound, VersionNotFound
from ferry.registry import Lineage, Registry
from tests.registry_fixtures import bundle_variant

pytestmark = pytest.mark.integration


def test_ancestors_and_descendants(registry: Registry, iris_bundle: Path, tmp_path: Path) -> None:
    def bundle(salt: str) -> Path:
        return bundle_variant(iris_bundle, tmp_path / salt, salt)

    base = registry.register(bundle("base"), "base", lineage=Lineage(run_id="r0"))
    v1 = registry.register(bundle("a1"), "iris", parent=("base", 1))
    v2 = registry.register(bundle("a2"), "iris", parent=1, lineage=Lineage(code_ref="abc"))
    v3 = registry.register(bundle("a3"), "iris", parent=2)
    side = registry.register(bundle("s1"), "iris", parent=1)
    other = registry.register(bundle("o1"), "distilled", parent=("iris", 2))
    assert v2.parent == ("iris", 1)
    assert other.parent == ("iris", 2)

    graph = registry.lineage("iris", 3)
    assert (graph.root.model, graph.root.version) == ("iris", 3)
    assert [(n.model, n.version, n.depth) for n in graph.ancestors] == [
        ("iris", 2, 1),
        ("iris", 1, 2),
        ("base", 1, 3),
    ]
    assert graph.ancestors[0].lineage.code_ref == "abc"
    assert graph.ancestors[-1].lineage.run_id == "r0"
    assert graph.descendants == []

    down = registry.lineage("base", base.version)
    assert [(n.model, n.version, n.depth) for n in down.descendants] == [
        ("iris", 1, 1),
        ("iris", 2, 2),
        ("iris", side.version, 2),
        ("distilled", 1, 3),
        ("iris", 3, 3),
    ]
    assert registry.lineage("iris", 1).ancestors[0].sha256 == base.sha256
    assert v1.version == 1
    assert v3.version == 3


def test_parent_must_exist_and_nothing_changes(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    registry.register(iris_bundle, "iris")
    counts = registry.metadata.row_counts()
    blobs = sorted(b.key for b in registry.artifacts.list())
    variant = bundle_variant(iris_bundle, tmp_path / "v", "v")
    with pytest.raises(VersionNotFound):
        registry.register(variant, "iris", parent=5)
    with pytest.raises(ModelNotFound):
        registry.register(variant, "iris", parent=("ghost", 1))
    with pytest.raises(ModelNotFound):
        registry.register(variant, "newmodel", parent=1)  # a new model has no version 1 yet
    assert registry.metadata.row_counts() == counts
    assert sorted(b.key for b in registry.artifacts.list()) == blobs


def test_deleted_parent_model_ends_the_chain(
    registry: Registry, iris_bundle: Path, tmp_path: Path
) -> None:
    registry.register(iris_bundle, "base")
    registry.register(bundle_variant(iris_bundle, tmp_path / "c", "c"), "child", parent=("base", 1))
    registry.delete_model("base")
    graph = registry.lineage("child", 1)
    assert graph.root.parent == ("base", 1)
    assert graph.ancestors == []
