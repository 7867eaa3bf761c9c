"""The model wheel built from a version in a real registry: deterministic, a valid RECORD, the
model's requirements as Requires-Dist, and a package that predicts what the version expects."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ferry.model
from ferry.errors import BundleError, ConnectionFailed, FlavorError
from ferry.model.example import compare_outputs
from ferry.model.manifest import MANIFEST_FILE, read_manifest
from ferry.packaging.wheel import build_wheel, distribution_name, package_name, upload_wheel
from ferry.registry import Registry
from tests.registry_fixtures import free_port


@pytest.fixture
def pulled(tmp_path: Path, iris_bundle: Path) -> Iterator[Path]:
    with Registry.open(f"sqlite:///{tmp_path / 'ferry.db'}", str(tmp_path / "artifacts")) as reg:
        reg.register(iris_bundle, "iris")
        yield reg.materialize("iris", 1, tmp_path / "pulled")


def test_wheel_is_deterministic_and_well_formed(pulled: Path, tmp_path: Path) -> None:
    one = build_wheel(pulled, tmp_path / "one")
    two = build_wheel(pulled, tmp_path / "two")
    assert one.sha256 == two.sha256
    assert one.path.read_bytes() == two.path.read_bytes()
    assert (one.distribution, one.package, one.version) == (
        "ferry-model-iris",
        "ferry_model_iris",
        "1",
    )
    with zipfile.ZipFile(one.path) as archive:
        names = archive.namelist()
        record = archive.read("ferry_model_iris-1.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if not digest:
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}"
            assert int(size) == len(data)
        assert len(record) == len(names)
        metadata = archive.read("ferry_model_iris-1.dist-info/METADATA").decode()
    manifest = read_manifest(pulled)
    for requirement in manifest.requirements:
        assert f"Requires-Dist: {requirement}" in metadata
    assert "ferry-ml" not in metadata
    assert f"ferry_model_iris/bundle/{MANIFEST_FILE}" in names
    assert {f"ferry_model_iris/bundle/{f.path}" for f in manifest.files} <= set(names)


def test_wheel_package_predicts_the_expected_output(pulled: Path, tmp_path: Path) -> None:
    built = build_wheel(pulled, tmp_path / "dist")
    site = tmp_path / "site"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(site)
    sys.path.insert(0, str(site))
    try:
        module = importlib.import_module("ferry_model_iris")
        model = module.load()
        assert module.load() is model  # loaded once
        rows = model.example()
        expected = model.expected()
        answer = {"predictions": module.predict(rows), "probabilities": module.predict_proba(rows)}
        assert compare_outputs(expected, answer) == []
        # lists in column order and a dict of columns give the same answer
        as_lists = [[row[c] for c in model.columns] for row in rows]
        assert module.predict(as_lists) == answer["predictions"]
        columns = {c: [row[c] for row in rows] for c in model.columns}
        assert module.predict(columns) == answer["predictions"]
        with pytest.raises(ValueError, match="missing column 'petal_width'"):
            module.predict([{k: v for k, v in rows[0].items() if k != "petal_width"}])
        with pytest.raises(ValueError, match="unknown columns \\['color'\\]"):
            module.predict([{**rows[0], "color": "red"}])
        assert (
            json.loads((site / "ferry_model_iris/model.json").read_text())["sha256"]
            == module.SHA256
        )
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.startswith("ferry_model_iris")]:
            del sys.modules[name]


def test_wheel_refuses_what_it_cannot_carry(
    pulled: Path, iris_bundle: Path, tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="not a registered version"):
        build_wheel(iris_bundle, tmp_path / "dist")
    manifest = read_manifest(pulled)
    manifest.model_copy(update={"flavor": "tensorflow"}).dump(pulled / MANIFEST_FILE)
    with pytest.raises(FlavorError, match="no wheel for flavor 'tensorflow'"):
        build_wheel(pulled, tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_names() -> None:
    assert distribution_name("My_Model.v2") == "ferry-model-my-model-v2"
    assert package_name("My_Model.v2") == "ferry_model_my_model_v2"


def test_upload_to_an_unreachable_index_is_a_clear_error(pulled: Path, tmp_path: Path) -> None:
    built = build_wheel(pulled, tmp_path / "dist")
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    with pytest.raises(ConnectionFailed, match="cannot reach the package index") as info:
        upload_wheel(built, url, username="u", password="p", timeout=5)
    assert info.value.details["url"] == url


@pytest.mark.parametrize(
    ("fixture", "extra"), [("flv_xgb_classifier", "xgboost"), ("flv_lgbm_classifier", "lightgbm")]
)
def test_other_flavors_load_through_ferry(
    fixture: str, extra: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = request.getfixturevalue(fixture)
    X = (
        request.getfixturevalue("flv_iris_snake")
        if extra == "lightgbm"
        else request.getfixturevalue("flv_iris")[0]
    )
    bundle = tmp_path / "bundle"
    ferry.model.save(model, bundle, example=X.sample(6, random_state=1), name="booster")
    with Registry.open(f"sqlite:///{tmp_path / 'ferry.db'}", str(tmp_path / "artifacts")) as reg:
        reg.register(bundle, "booster")
        pulled = reg.materialize("booster", 1, tmp_path / "pulled")
    built = build_wheel(pulled, tmp_path / "dist")
    with zipfile.ZipFile(built.path) as archive:
        metadata = archive.read("ferry_model_booster-1.dist-info/METADATA").decode()
        archive.extractall(tmp_path / "site")
    assert f"Requires-Dist: ferry-ml[{extra}]>=" in metadata
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        module = importlib.import_module("ferry_model_booster")
        rows = module.load().example()
        answer = {"predictions": module.predict(rows), "probabilities": module.predict_proba(rows)}
        assert compare_outputs(module.load().expected(), answer) == []
    finally:
        sys.path.remove(str(tmp_path / "site"))
        for name in [m for m in sys.modules if m.startswith("ferry_model_booster")]:
            del sys.modules[name]
