"""Version routes: list and search, get, tags, metrics, lineage, download."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferry.model
from ferry.model.manifest import read_manifest
from ferry.registry import Lineage, content_sha256, unpack_archive
from tests.unit.server.control.harness import API, Control


@pytest.fixture
def three(control: Control, iris_variants: list[Path]) -> Control:
    """iris 1 <- 2 <- 3 (parents), with metrics and tags, production on 2."""
    registry = control.registry
    registry.register(
        iris_variants[0], "iris", metrics={"acc": 0.91}, tags={"stage": "old"}, description="first"
    )
    registry.register(
        iris_variants[1],
        "iris",
        parent=1,
        metrics={"acc": 0.95},
        tags={"stage": "candidate"},
        lineage=Lineage(data_fingerprint="ab" * 32, data_rows=150, code_ref="git:abc123"),
        params={"C": "1.0"},
    )
    registry.register(iris_variants[2], "iris", parent=2, metrics={"acc": 0.97})
    registry.set_alias("iris", "production", 2)
    return control


def test_list_newest_first_with_aliases(three: Control) -> None:
    page = three.http.get(f"{API}/models/iris/versions").json()
    assert [v["version"] for v in page["items"]] == [3, 2, 1]
    assert page["total"] == 3
    by_number = {v["version"]: v for v in page["items"]}
    assert by_number[2]["aliases"] == ["production"]
    assert by_number[1]["aliases"] == []
    assert by_number[2]["parent"] == {"model": "iris", "version": 1}
    assert by_number[2]["params"] == {"C": "1.0"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"metric": "acc>=0.95"}, [3, 2]),
        ({"metric": "acc<0.92"}, [1]),
        ({"tag": "stage"}, [2, 1]),
        ({"tag": "stage=candidate"}, [2]),
        ({"metric": "acc>0.9", "limit": 1, "offset": 1}, [2]),
    ],
)
def test_search_by_tag_and_metric(
    three: Control, params: dict[str, object], expected: list[int]
) -> None:
    page = three.http.get(f"{API}/models/iris/versions", params=params).json()
    assert [v["version"] for v in page["items"]] == expected


def test_get_version_matches_the_registry(three: Control, iris_variants: list[Path]) -> None:
    answer = three.http.get(f"{API}/models/iris/versions/2")
    assert answer.status_code == 200
    body = answer.json()
    record = three.registry.get_version("iris", 2)
    assert body["sha256"] == record.sha256 == content_sha256(read_manifest(iris_variants[1]))
    assert body["ref"] == "iris/2"
    assert body["flavor"] == "sklearn"
    assert body["size"] == record.size
    assert body["metrics"] == {"acc": 0.95}
    assert body["lineage"] == {
        "data_fingerprint": "ab" * 32,
        "data_rows": 150,
        "code_ref": "git:abc123",
        "run_id": None,
    }
    assert [c["name"] for c in body["signature"]["inputs"]] == record.signature.names
    assert {f["path"] for f in body["files"]} == {f.path for f in record.files}


def test_patch_tags_adds_or_replaces(three: Control) -> None:
    added = three.http.patch(f"{API}/models/iris/versions/1", json={"tags": {"owner": "ana"}})
    assert added.status_code == 200
    assert added.json()["tags"] == {"stage": "old", "owner": "ana"}
    replaced = three.http.patch(
        f"{API}/models/iris/versions/1", json={"tags": {"stage": "retired"}, "replace": True}
    )
    assert replaced.json()["tags"] == {"stage": "retired"}
    assert three.registry.get_version("iris", 1).tags == {"stage": "retired"}


def test_log_metrics(three: Control) -> None:
    answer = three.http.post(
        f"{API}/models/iris/versions/3/metrics", json={"metrics": {"acc": 0.98, "f1": 0.9}}
    )
    assert answer.status_code == 200
    assert answer.json()["metrics"] == {"acc": 0.98, "f1": 0.9}
    assert three.registry.get_version("iris", 3).metrics == {"acc": 0.98, "f1": 0.9}


def test_lineage_has_ancestors_and_descendants(three: Control) -> None:
    graph = three.http.get(f"{API}/models/iris/versions/2/lineage").json()
    assert (graph["root"]["version"], graph["root"]["depth"]) == (2, 0)
    assert graph["root"]["lineage"]["code_ref"] == "git:abc123"
    assert [(n["version"], n["depth"]) for n in graph["ancestors"]] == [(1, 1)]
    assert [(n["version"], n["depth"]) for n in graph["descendants"]] == [(3, 1)]
    top = three.http.get(f"{API}/models/iris/versions/3/lineage").json()
    assert [n["version"] for n in top["ancestors"]] == [2, 1]
    assert top["descendants"] == []


def test_download_is_the_bundle(
    three: Control,
    tmp_path: Path,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    answer = three.http.get(f"{API}/models/iris/versions/2/download")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/gzip"
    assert 'filename="iris-2.tar.gz"' in answer.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        assert "ferry.yaml" in archive.getnames()
    archive_path = tmp_path / "iris-2.tar.gz"
    archive_path.write_bytes(answer.content)
    bundle = unpack_archive(archive_path, tmp_path / "pulled")
    assert content_sha256(read_manifest(bundle)) == three.registry.get_version("iris", 2).sha256
    X, _ = iris_data
    loaded = ferry.model.load(bundle)
    assert loaded.predict(X[:20]).tolist() == iris_model.predict(X[:20]).tolist()
    assert three.staging_leftovers() == []  # the temporary archive is gone once sent
