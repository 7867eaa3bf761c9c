"""Client's registry calls against the real control-plane router over a real registry."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferry.model
from ferry.client import Client, ModelVersion
from ferry.errors import (
    AliasNotFound,
    InvalidName,
    InvalidRequest,
    ModelExists,
    ModelNotFound,
    UnsafeModel,
    VersionNotFound,
)
from ferry.model.manifest import read_manifest
from ferry.registry import Lineage, content_sha256, fingerprint_data
from tests.registry_fixtures import bundle_variant
from tests.unit.server.control.harness import Control, running_control

Data = tuple[pd.DataFrame, pd.Series]

# uploads and downloads wait longer for the server than predictions (a per-request timeout);
# Starlette's TestClient, standing in for the network here, warns that it ignores timeouts
pytestmark = pytest.mark.filterwarnings(
    "ignore:You should not use the 'timeout' argument with the TestClient"
)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    with running_control(tmp_path / "server") as opened:
        yield opened


@pytest.fixture
def client(control: Control) -> Client:
    return Client(http=control.http)


@pytest.fixture
def variants(tmp_path: Path, iris_bundle: Path) -> list[Path]:
    return [bundle_variant(iris_bundle, tmp_path / f"v{i}", f"salt {i}") for i in range(3)]


def test_register_a_bundle_folder_then_again(
    client: Client, control: Control, iris_bundle: Path
) -> None:
    seen: list[tuple[int, int | None]] = []
    first = client.register(
        iris_bundle,
        "iris",
        alias="production",
        metrics={"acc": 0.97},
        params={"C": 1.0},
        tags={"team": "ds"},
        description="first",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert isinstance(first, ModelVersion)
    assert (first.model, first.version, first.created) == ("iris", 1, True)
    assert first.sha256 == content_sha256(read_manifest(iris_bundle))
    assert first.aliases == ["production"]
    assert first.metrics == {"acc": 0.97}
    assert first.params == {"C": "1.0"}
    assert first.signature == read_manifest(iris_bundle).signature
    assert seen
    assert seen[-1][0] == seen[-1][1]  # the whole archive was sent
    again = client.register(iris_bundle, "iris")
    assert (again.version, again.created) == (1, False)
    assert control.registry.metadata.row_counts()["versions"] == 1


def test_register_a_raw_file_with_a_frame_example_and_data(
    client: Client,
    tmp_path: Path,
    iris_model: LogisticRegression,
    iris_data: Data,
    variants: list[Path],
    control: Control,
) -> None:
    control.registry.register(variants[0], "iris")
    X, y = iris_data
    model_file = tmp_path / "iris.joblib"
    joblib.dump(iris_model, model_file)
    train = tmp_path / "train.csv"
    X.assign(target=y).to_csv(train, index=False)
    version = client.register(
        model_file,
        "iris",
        example=X.sample(6, random_state=3),
        data=train,
        parent=1,
        code_ref="git:1234abc",
        run_id="run-42",
    )
    assert (version.version, version.flavor) == (2, "sklearn")
    assert version.parent is not None
    assert (version.parent.model, version.parent.version) == ("iris", 1)
    digest, rows = fingerprint_data(train)
    assert version.lineage.data_fingerprint == digest
    assert version.lineage.data_rows == rows == len(X)
    assert version.lineage.code_ref == "git:1234abc"
    assert version.lineage.run_id == "run-42"
    graph = client.lineage("iris", 2)
    assert [n.version for n in graph.ancestors] == [1]
    assert graph.root.lineage.data_fingerprint == digest

    folder = client.pull("iris/2", tmp_path / "pulled")
    loaded = ferry.model.load(folder)
    assert loaded.predict(X).tolist() == iris_model.predict(X).tolist()


def test_register_a_custom_predictor_with_its_code(
    client: Client,
    tmp_path: Path,
    flv_custom: Path,
    flv_logreg: LogisticRegression,
    flv_iris_rows: pd.DataFrame,
) -> None:
    version = client.register(
        f"{flv_custom}:IrisPredictor",
        "flowers",
        code=[flv_custom.parent / "assets"],
        example=flv_iris_rows,
        trust=True,  # a custom class is code: the server refuses it without trust
    )
    assert version.flavor == "custom"
    assert version.tags["ferry.trusted_by"] == "local"
    loaded = ferry.model.load(client.pull("flowers", tmp_path / "flowers"), trust=True)
    assert loaded.predict(flv_iris_rows).tolist() == flv_logreg.predict(flv_iris_rows).tolist()


def test_register_refusals(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        client.register(tmp_path / "missing.pkl", "iris")
    corrupt = tmp_path / "model.joblib"
    corrupt.write_bytes(b"not a pickle")
    with pytest.raises(UnsafeModel) as caught:  # the pickle scanner cannot parse it
        client.register(corrupt, "iris")
    assert caught.value.code == "unsafe_model"
    with pytest.raises(InvalidName):
        client.register(corrupt, "bad/name")


def test_models_crud_and_listing(client: Client, control: Control, iris_bundle: Path) -> None:
    created = client.create_model("iris", description="flowers", tags={"team": "ds"})
    assert (created.name, created.latest_version) == ("iris", None)
    with pytest.raises(ModelExists):
        client.create_model("iris")
    client.create_model("wine")
    control.registry.register(iris_bundle, "iris")
    page = client.registered_models()
    assert [m.name for m in page.items] == ["iris", "wine"]
    assert page.total == 2
    assert [m.name for m in client.registered_models(tag="team=ds").items] == ["iris"]
    assert [m.name for m in client.registered_models(prefix="wi").items] == ["wine"]
    assert client.registered_model("iris").latest_version == 1
    updated = client.update_model("wine", description="red")
    assert updated.description == "red"
    client.delete_model("wine")
    with pytest.raises(ModelNotFound):
        client.registered_model("wine")


def test_versions_tags_metrics_and_search(
    client: Client, control: Control, variants: list[Path]
) -> None:
    for i, variant in enumerate(variants):
        control.registry.register(variant, "iris", metrics={"acc": 0.9 + i / 100})
    page = client.versions("iris")
    assert [v.version for v in page.items] == [3, 2, 1]
    assert [v.version for v in client.versions("iris", metric="acc>=0.91").items] == [3, 2]
    assert [v.version for v in client.versions("iris", limit=1, offset=2).items] == [1]
    tagged = client.tag_version("iris", 2, {"stage": "candidate"})
    assert tagged.tags == {"stage": "candidate"}
    assert [v.version for v in client.versions("iris", tag="stage").items] == [2]
    logged = client.log_metrics("iris", 2, {"f1": 0.8})
    assert logged.metrics == {"acc": 0.91, "f1": 0.8}
    assert client.version("iris", 2).metrics == logged.metrics
    with pytest.raises(VersionNotFound):
        client.version("iris", 9)


def test_aliases_and_resolve(client: Client, control: Control, variants: list[Path]) -> None:
    for variant in variants[:2]:
        control.registry.register(variant, "iris")
    assert client.resolve("iris").version == 2  # latest while no production alias
    moved = client.set_alias("iris", "production", 1)
    assert (moved.alias, moved.version) == ("production", 1)
    assert client.resolve("iris").version == 1  # production wins
    assert client.resolve("iris@production").version == 1
    assert client.resolve("iris/2").version == 2
    assert client.resolve("iris:2").version == 2
    client.set_alias("iris", "production", 2)
    assert [(a.alias, a.version) for a in client.aliases("iris")] == [("production", 2)]
    client.delete_alias("iris", "production")
    with pytest.raises(AliasNotFound):
        client.alias("iris", "production")
    moves = client.alias_history("iris", "production")
    assert [(m.old_version, m.new_version) for m in moves] == [(None, 1), (1, 2), (2, None)]
    audit = client.audit(limit=2)
    assert [e.action for e in audit.items] == ["alias.delete", "alias.set"]
    assert audit.total == control.registry.metadata.row_counts()["audit_log"]


def test_pull_destinations(
    client: Client,
    control: Control,
    iris_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control.registry.register(iris_bundle, "iris", lineage=Lineage(code_ref="abc"), description="d")
    control.registry.set_alias("iris", "production", 1)
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[int, int | None]] = []
    folder = client.pull("iris@production", progress=lambda d, t: seen.append((d, t)))
    assert folder == Path("iris-1")
    assert content_sha256(read_manifest(folder)) == content_sha256(read_manifest(iris_bundle))
    assert seen[-1][0] == seen[-1][1]
    with pytest.raises(InvalidRequest, match="already exists"):
        client.pull("iris")
    (folder / "stray.txt").write_text("left from before")
    again = client.pull("iris", overwrite=True)
    assert not (again / "stray.txt").exists()
    archive = client.download("iris", 1, tmp_path / "iris.tar.gz")
    assert archive.stat().st_size > 0
    shutil.rmtree(folder)


def test_api_key_is_sent_as_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        body = {"error": {"code": "model_not_found", "message": "no", "details": {}}}
        return httpx.Response(404, json=body)

    def http() -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://ferry")

    with pytest.raises(ModelNotFound):
        Client(http=http(), api_key="secret").registered_model("iris")
    monkeypatch.setenv("FERRY_API_KEY", "from-env")
    with pytest.raises(ModelNotFound):
        Client(http=http()).version("iris", 1)
    monkeypatch.delenv("FERRY_API_KEY")
    with pytest.raises(ModelNotFound):
        Client(http=http()).registered_models()
    assert seen == ["Bearer secret", "Bearer from-env", None]
