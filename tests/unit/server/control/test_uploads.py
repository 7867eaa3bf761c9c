"""POST /api/v1/models/{name}/versions: bundles and raw model files become versions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression

import ferry.model
from ferry.model.manifest import read_manifest
from ferry.registry import content_sha256
from tests.unit.server.control.harness import API, Control

Data = tuple[pd.DataFrame, pd.Series]

CUSTOM_PREDICTOR = textwrap.dedent(
    '''
    """Prints while loading: the inspector's report must not be disturbed by it."""
    from pathlib import Path

    import joblib

    print("custom predictor module imported")


    class Flowers:
        artifacts = "assets"

        def load(self, model_dir):
            print("loading from", model_dir)
            self.model = joblib.load(Path(model_dir) / "assets" / "model.joblib")
            self.classes = list(self.model.classes_)

        def predict(self, frame):
            return self.model.predict(frame)

        def predict_proba(self, frame):
            return self.model.predict_proba(frame)
    '''
)


def pulled(
    control: Control, name: str, version: int, dest: Path, *, trust: bool = False
) -> ferry.model.LoadedModel:
    """The version downloaded, unpacked and loaded here (as a client would; a code model
    only with ``trust``)."""
    from ferry.registry import unpack_archive

    answer = control.http.get(f"{API}/models/{name}/versions/{version}/download")
    assert answer.status_code == 200
    archive = dest.with_suffix(".tar.gz")
    archive.write_bytes(answer.content)
    return ferry.model.load(unpack_archive(archive, dest), trust=trust)


def test_bundle_upload_with_metadata(control: Control, iris_bundle: Path) -> None:
    metadata = {
        "description": "iris, first try",
        "tags": {"team": "ds"},
        "metrics": {"acc": 0.97},
        "params": {"C": 1.0, "max_iter": 1000, "warm": True},
        "lineage": {"data_fingerprint": "cd" * 32, "data_rows": 150, "run_id": "run-7"},
        "alias": "production",
    }
    answer = control.upload("iris", bundle=iris_bundle, metadata=metadata)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["created"]) == ("iris", 1, True)
    assert body["alias"] == "production"
    assert body["aliases"] == ["production"]
    assert body["sha256"] == content_sha256(read_manifest(iris_bundle))
    assert body["flavor"] == "sklearn"
    assert body["description"] == "iris, first try"
    assert body["tags"] == {"team": "ds"}
    assert body["metrics"] == {"acc": 0.97}
    assert body["params"] == {"C": "1.0", "max_iter": "1000", "warm": "true"}
    assert body["lineage"]["run_id"] == "run-7"
    assert body["lineage"]["data_rows"] == 150
    assert control.registry.resolve("iris@production").version == 1
    assert control.staging_leftovers() == []


def test_same_content_again_is_the_same_version(control: Control, iris_bundle: Path) -> None:
    first = control.upload("iris", bundle=iris_bundle)
    assert first.status_code == 201
    before = control.snapshot()
    again = control.upload("iris", bundle=iris_bundle, metadata={"metrics": {"acc": 0.5}})
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["version"] == 1
    assert again.json()["metrics"] == {}  # the existing version, unchanged
    assert control.snapshot() == before


def test_raw_joblib_with_example_and_requirements(
    control: Control,
    tmp_path: Path,
    iris_model: LogisticRegression,
    iris_data: Data,
    iris_example_csv: Path,
) -> None:
    model_file = tmp_path / "iris.joblib"
    joblib.dump(iris_model, model_file)
    requirements = b"scikit-learn>=1.4  # the estimator\n\n# a comment\njoblib\n"
    answer = control.upload(
        "iris",
        model=model_file,
        example=iris_example_csv,
        metadata={"description": "from a raw file"},
        extra=[("requirements", ("requirements.txt", requirements))],
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["flavor"] == "sklearn"
    assert body["requirements"] == ["scikit-learn>=1.4", "joblib"]
    X, _ = iris_data
    assert [c["name"] for c in body["signature"]["inputs"]] == list(X.columns)
    assert {o["name"] for o in body["signature"]["outputs"]} == {"predictions", "probabilities"}
    assert {"example.json", "expected.json"} <= {f["path"] for f in body["files"]}

    loaded = pulled(control, "iris", 1, tmp_path / "pulled")
    assert loaded.manifest.description == "from a raw file"
    assert loaded.predict(X).tolist() == iris_model.predict(X).tolist()

    again = control.upload(
        "iris",
        model=model_file,
        example=iris_example_csv,
        extra=[("requirements", ("requirements.txt", requirements))],
    )
    assert again.status_code == 200
    assert again.json()["version"] == 1


def test_raw_file_without_example_uses_the_models_own_inputs(
    control: Control, tmp_path: Path, iris_model: LogisticRegression, iris_data: Data
) -> None:
    model_file = tmp_path / "model.pkl"
    joblib.dump(iris_model, model_file)
    answer = control.upload("iris", model=model_file)
    assert answer.status_code == 201, answer.text
    X, _ = iris_data
    assert [c["name"] for c in answer.json()["signature"]["inputs"]] == list(X.columns)
    loaded = pulled(control, "iris", 1, tmp_path / "pulled")
    assert loaded.predict(X[:30]).tolist() == iris_model.predict(X[:30]).tolist()


def test_custom_predictor_from_code_parts(
    control: Control,
    tmp_path: Path,
    iris_model: LogisticRegression,
    iris_data: Data,
    iris_example_csv: Path,
) -> None:
    """A custom class is code: refused without trust=true (auth off: no scope to check, the
    flag is still needed), registered with it and tagged as trusted code."""
    weights = tmp_path / "model.joblib"
    joblib.dump(iris_model, weights)
    parts = [
        ("code", ("predictor.py", CUSTOM_PREDICTOR.encode())),
        ("code", ("assets/model.joblib", weights.read_bytes())),
    ]
    metadata = {"entrypoint": "predictor.py:Flowers"}
    refused = control.upload("flowers", example=iris_example_csv, metadata=metadata, extra=parts)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unsafe_model"
    assert error["details"]["field"] == "trust"
    assert error["details"]["reasons"] == ["predictor.py:Flowers is a Python class"]
    assert "trust:flowers" in error["message"]
    assert str(tmp_path) not in refused.text  # no staging path
    trust = ("trust", (None, b"true"))
    answer = control.upload(
        "flowers",
        example=iris_example_csv,
        metadata=metadata,
        extra=[*parts, trust],  # type: ignore[list-item]
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["flavor"] == "custom"
    tags = answer.json()["tags"]
    assert tags["ferry.trusted_by"] == "local"
    assert tags["ferry.code"] == "predictor.py:Flowers is a Python class"
    # the same code as a bundle archive is code too
    archive = control.http.get(f"{API}/models/flowers/versions/1/download").content
    as_bundle = [("bundle", ("flowers.tar.gz", archive))]
    again = control.upload("copy", extra=as_bundle)  # type: ignore[arg-type]
    assert again.status_code == 422, again.text
    assert again.json()["error"]["details"]["reasons"] == [
        "the bundle's model is a Python class (model/predictor.py)"
    ]
    assert control.upload("copy", extra=[*as_bundle, trust]).status_code == 201  # type: ignore[list-item]
    X, _ = iris_data
    loaded = pulled(control, "flowers", 1, tmp_path / "pulled", trust=True)
    assert loaded.predict(X).tolist() == iris_model.predict(X).tolist()
    assert loaded.predict_proba(X[:5]).tolist() == iris_model.predict_proba(X[:5]).tolist()


def test_parent_in_another_model_alias_and_existing_model_only(
    control: Control, iris_variants: list[Path]
) -> None:
    control.registry.register(iris_variants[0], "iris")
    control.registry.create_model("iris-small")
    answer = control.upload(
        "iris-small",
        bundle=iris_variants[1],
        metadata={
            "parent": {"model": "iris", "version": 1},
            "alias": "staging",
            "create_model": False,
        },
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["parent"] == {"model": "iris", "version": 1}
    lineage = control.http.get(f"{API}/models/iris/versions/1/lineage").json()
    assert [(n["model"], n["version"]) for n in lineage["descendants"]] == [("iris-small", 1)]
    assert control.registry.resolve("iris-small@staging").version == 1


def test_bundle_archive_of_a_folder(control: Control, iris_bundle: Path) -> None:
    """``tar czf iris.tar.gz iris/``: the bundle is the archive's one top folder."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(iris_bundle, arcname="iris")
    answer = control.http.post(
        f"{API}/models/iris/versions", files={"bundle": ("iris.tar.gz", buffer.getvalue())}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["sha256"] == content_sha256(read_manifest(iris_bundle))
