"""Every flavor: save -> load -> predict gives the model's own answers; raw files; detection."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import ferry.model
from ferry.errors import FlavorError, MissingColumn, MissingDependency, UnsafeModel
from ferry.model.flavors import detect_flavor, flavor_for_object, get_flavor
from ferry.model.loaded import LibraryVersionWarning
from ferry.model.signature import Batch, ColumnSpec
from tests.flavor_cases import CASES, Case, assert_same, value_of

CODE_CASES = {"mlflow_pyfunc", "custom_predictor"}  # custom classes, MLflow python_function


@pytest.mark.parametrize("case_name", list(CASES))
def test_save_load_predict_matches_the_model(
    case_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    case = CASES[case_name](request)
    manifest = ferry.model.save(case.source, tmp_path / "bundle", example=case.example)
    assert manifest.flavor == case.flavor
    assert all(version for version in manifest.libraries.values())

    if case_name in CODE_CASES:  # loading runs the model's own Python: an explicit decision
        with pytest.raises(UnsafeModel, match="code, not data"):
            ferry.model.load(tmp_path / "bundle")
    loaded = ferry.model.load(tmp_path / "bundle", trust=case_name in CODE_CASES)
    assert loaded.signature.names == [str(c) for c in case.example.columns]
    assert_same(loaded.predict(case.example), case.predictions, case.tolerance)
    assert loaded.expected is not None
    assert_same(loaded.expected["predictions"], case.predictions, case.tolerance)

    assert loaded.predictor.has_proba == (case.probabilities is not None)
    assert loaded.predictor.classes == case.classes
    if case.probabilities is not None:
        assert_same(loaded.predict_proba(case.example), case.probabilities, case.tolerance)
        assert_same(loaded.expected["probabilities"], case.probabilities, case.tolerance)
        proba_output = loaded.signature.output("probabilities")
        assert proba_output is not None
        assert proba_output.labels == case.classes
        assert loaded.signature.outputs[0].kind == "label"


# --- raw files served without a bundle -----------------------------------------------------
def _raw_onnx(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["onnx_zipmap_proto"](request)
    return value_of(request, "flv_onnx_files")["zipmap"], case.example.to_numpy(), case


def _raw_onnx_regressor(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["onnx_regressor"](request)
    return value_of(request, "flv_onnx_files")["regressor"], case.example.to_numpy(), case


def _raw_xgb_json(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["xgboost_classifier"](request)
    return value_of(request, "flv_files")["xgb_json"], case.example, case


def _raw_xgb_ubj(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["xgboost_ubj_file"](request)
    return value_of(request, "flv_files")["xgb_ubj"], case.example, case


def _raw_lgb_classifier(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    """The booster alone knows classes 0..2 and sanitised names; send plain rows."""
    model = value_of(request, "flv_lgbm_classifier")
    rows = value_of(request, "flv_iris_snake_rows")
    proba = model.predict_proba(rows)
    case = Case("lightgbm", None, rows, np.argmax(proba, axis=1), proba, [0, 1, 2])
    return value_of(request, "flv_files")["lgb_classifier"], rows.to_numpy(), case


def _raw_lgb_booster(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["lightgbm_text_file"](request)
    return value_of(request, "flv_files")["lgb_booster"], case.example, case


def _raw_joblib(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["sklearn_joblib_file"](request)
    return value_of(request, "flv_files")["joblib"], case.example, case


def _raw_skops(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["sklearn_joblib_file"](request)
    return value_of(request, "flv_files")["skops"], case.example, case


def _raw_mlflow_sklearn(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["mlflow_sklearn_skops"](request)
    return value_of(request, "flv_mlflow_sklearn"), case.example, case


def _raw_mlflow_cloudpickle(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["mlflow_sklearn_cloudpickle"](request)
    return value_of(request, "flv_mlflow_cloudpickle"), case.example, case


def _raw_mlflow_pyfunc(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["mlflow_pyfunc"](request)
    return value_of(request, "flv_mlflow_pyfunc"), case.example, case


def _raw_mlflow_onnx(request: pytest.FixtureRequest) -> tuple[Path, Any, Case]:
    case = CASES["mlflow_onnx"](request)
    return value_of(request, "flv_mlflow_onnx"), case.example.to_numpy(), case


RAW: dict[str, Callable[[pytest.FixtureRequest], tuple[Path, Any, Case]]] = {
    "onnx_zipmap": _raw_onnx,
    "onnx_regressor": _raw_onnx_regressor,
    "xgboost_json": _raw_xgb_json,
    "xgboost_ubj": _raw_xgb_ubj,
    "lightgbm_classifier": _raw_lgb_classifier,
    "lightgbm_booster": _raw_lgb_booster,
    "sklearn_joblib": _raw_joblib,
    "sklearn_skops": _raw_skops,
    "mlflow_sklearn": _raw_mlflow_sklearn,
    "mlflow_cloudpickle": _raw_mlflow_cloudpickle,
    "mlflow_pyfunc": _raw_mlflow_pyfunc,
    "mlflow_onnx": _raw_mlflow_onnx,
}


@pytest.mark.parametrize("raw_name", list(RAW))
def test_raw_model_file_serves_without_a_bundle(
    raw_name: str, request: pytest.FixtureRequest
) -> None:
    path, data, case = RAW[raw_name](request)
    loaded = ferry.model.load(path, trust=raw_name in CODE_CASES)
    assert loaded.root is None
    assert loaded.manifest.flavor == case.flavor
    assert_same(loaded.predict(data), case.predictions, case.tolerance)
    if case.probabilities is not None:
        assert loaded.predictor.classes == case.classes
        assert_same(loaded.predict_proba(data), case.probabilities, case.tolerance)
        assert [o.name for o in loaded.signature.outputs] == ["predictions", "probabilities"]


def test_onnx_declares_one_tensor_input_per_graph_input(flv_onnx_files: dict[str, Path]) -> None:
    predictor = get_flavor("onnx").load(flv_onnx_files["zipmap"], {})
    assert predictor.declared_inputs == [ColumnSpec(name="float_input", dtype="float32", shape=[4])]
    assert predictor.classes == [0, 1, 2]


def test_onnx_feeds_one_input_per_column(tmp_path: Path) -> None:
    """A graph with one input per column ([N, 1] and [N]) is fed by name, cast to its dtypes."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["n"], ["n_float"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["n_float", "column"], ["n_column"]),
            helper.make_node("Mul", ["x", "two"], ["twice"]),
            helper.make_node("Add", ["twice", "n_column"], ["y"]),
        ],
        "per_column",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("n", TensorProto.INT64, [None]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("column", TensorProto.INT64, [2], [-1, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "per_column.onnx"
    path.write_bytes(model.SerializeToString())

    predictor = get_flavor("onnx").load(path, {})
    assert predictor.declared_inputs == [
        ColumnSpec(name="x", dtype="float32"),
        ColumnSpec(name="n", dtype="int64"),
    ]
    assert not predictor.has_proba
    batch = Batch({"x": np.array([0.5, 1.0, -2.0]), "n": np.array([1, 2, 3])}, 3)
    assert predictor.predict(batch).tolist() == [2.0, 4.0, -1.0]


def test_mlflow_declared_inputs_come_from_the_signature(
    flv_mlflow_sklearn: Path, flv_mlflow_onnx: Path, flv_iris: Any, tmp_path: Path
) -> None:
    columns = list(flv_iris[0].columns)
    predictor = get_flavor("mlflow").load(flv_mlflow_sklearn, {})
    assert predictor.declared_inputs == [ColumnSpec(name=c, dtype="float64") for c in columns]
    onnx_predictor = get_flavor("mlflow").load(flv_mlflow_onnx, {})
    assert onnx_predictor.declared_inputs == [
        ColumnSpec(name="float_input", dtype="float32", shape=[4])
    ]

    edited = tmp_path / "optional"
    shutil.copytree(flv_mlflow_sklearn, edited)
    mlmodel = yaml.safe_load((edited / "MLmodel").read_text())
    mlmodel["signature"]["inputs"] = mlmodel["signature"]["inputs"].replace(
        '"required": true', '"required": false', 1
    )
    (edited / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    declared = get_flavor("mlflow").load(edited, {}).declared_inputs
    assert declared is not None
    assert [c.required for c in declared] == [False, True, True, True]


def test_mlflow_native_flavors_need_no_mlflow(
    flv_mlflow_sklearn: Path, flv_iris_rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    loaded = ferry.model.load(flv_mlflow_sklearn)
    assert len(loaded.predict(flv_iris_rows)) == len(flv_iris_rows)


def test_mlflow_save_records_the_inner_flavor(
    flv_mlflow_pyfunc: Path, flv_mlflow_sklearn: Path, flv_iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    pyfunc = ferry.model.save(flv_mlflow_pyfunc, tmp_path / "a", example=flv_iris_rows)
    assert pyfunc.flavor_options["inner"] == "python_function"
    assert pyfunc.artifact == "model/mlflow_pyfunc"
    assert (tmp_path / "a" / "model" / "mlflow_pyfunc" / "MLmodel").is_file()
    assert any(lib.startswith("mlflow") for lib in pyfunc.libraries)
    native = ferry.model.save(flv_mlflow_sklearn, tmp_path / "b", example=flv_iris_rows)
    assert native.flavor_options["inner"] == "sklearn"
    assert {"scikit-learn", "skops"} <= set(native.libraries)


# --- custom -------------------------------------------------------------------------------
def test_custom_bundle_carries_its_artifacts(
    flv_custom: Path, flv_iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    shutil.copytree(flv_custom.parent, source)
    manifest = ferry.model.save(
        f"{source / 'predictor.py'}:IrisPredictor", tmp_path / "bundle", example=flv_iris_rows
    )
    assert manifest.name == "irispredictor"
    assert manifest.artifact == "model/predictor.py"
    assert manifest.flavor_options == {
        "module_file": "predictor.py",
        "class_name": "IrisPredictor",
        "artifacts": "assets",
    }
    files = {entry.path for entry in manifest.files}
    assert {"model/predictor.py", "model/assets/model.joblib"} <= files
    shutil.rmtree(source)
    # the bundle's own copy of file and assets
    loaded = ferry.model.load(tmp_path / "bundle", trust=True)
    assert loaded.predictor.classes == [0, 1, 2]
    assert not list(tmp_path.rglob("__pycache__"))


def test_custom_load_may_return_the_predicting_object(
    flv_custom: Path, flv_logreg: Any, flv_iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    manifest = ferry.model.save(f"{flv_custom}:Factory", tmp_path / "b", example=flv_iris_rows)
    assert manifest.flavor_options["class_name"] == "Factory"
    loaded = ferry.model.load(tmp_path / "b", trust=True)
    assert_same(loaded.predict(flv_iris_rows), flv_logreg.predict(flv_iris_rows), 0)
    assert_same(loaded.predict_proba(flv_iris_rows), flv_logreg.predict_proba(flv_iris_rows), 0)
    assert loaded.predictor.classes == [0, 1, 2]


def test_custom_gets_a_dict_of_arrays_for_tensor_inputs(flv_custom: Path) -> None:
    predictor = get_flavor("custom").load(Path(f"{flv_custom}:Doubler"), {})
    batch = Batch({"x": np.arange(6.0).reshape(3, 2)}, 3)
    assert predictor.predict(batch).tolist() == [2.0, 10.0, 18.0]
    assert not predictor.has_proba
    assert predictor.declared_inputs is None


def test_custom_needs_an_example(flv_custom: Path, tmp_path: Path) -> None:
    source = f"{flv_custom}:IrisPredictor"
    with pytest.raises(FlavorError, match="does not say what inputs"):
        ferry.model.load(source, trust=True)
    with pytest.raises(MissingColumn):
        ferry.model.save(source, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_custom_rejects_a_missing_class(flv_custom: Path, tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="no class 'Nope'"):
        ferry.model.save(f"{flv_custom}:Nope", tmp_path / "bundle", example=[[1.0]])


# --- detection -------------------------------------------------------------------------------
DETECT: dict[str, tuple[str, str]] = {
    # name -> (fixture, key or "", expected flavor)
    "joblib": ("flv_files", "joblib"),
    "skops": ("flv_files", "skops"),
    "onnx": ("flv_onnx_files", "zipmap"),
    "xgboost_json": ("flv_files", "xgb_json"),
    "xgboost_ubj": ("flv_files", "xgb_ubj"),
    "xgboost_bst": ("flv_files", "xgb_bst"),
    "lightgbm_txt": ("flv_files", "lgb_booster"),
    "mlflow_folder": ("flv_mlflow_sklearn", ""),
    "mlflow_pyfunc": ("flv_mlflow_pyfunc", ""),
}
EXPECTED_FLAVOR = {
    "joblib": "sklearn",
    "skops": "sklearn",
    "onnx": "onnx",
    "xgboost_json": "xgboost",
    "xgboost_ubj": "xgboost",
    "xgboost_bst": "xgboost",
    "lightgbm_txt": "lightgbm",
    "mlflow_folder": "mlflow",
    "mlflow_pyfunc": "mlflow",
}


@pytest.mark.parametrize("kind", list(DETECT))
def test_detect_each_kind(kind: str, request: pytest.FixtureRequest) -> None:
    fixture, key = DETECT[kind]
    value = request.getfixturevalue(fixture)
    path = value[key] if key else value
    assert detect_flavor(path).name == EXPECTED_FLAVOR[kind]


def test_detect_custom_and_mlflow_file(flv_custom: Path, flv_mlflow_sklearn: Path) -> None:
    assert detect_flavor(Path(f"{flv_custom}:IrisPredictor")).name == "custom"
    assert detect_flavor(flv_mlflow_sklearn / "MLmodel").name == "mlflow"


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("data.json", b'{"columns": ["a"], "data": [[1]]}'),
        ("notes.txt", b"house\nversion=1 is not a LightGBM model"),
        ("predictor.py:Missing", b""),
    ],
)
def test_detect_rejects_lookalikes(filename: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / filename
    if content:
        path.write_bytes(content)
    with pytest.raises(FlavorError, match="cannot tell what kind of model"):
        detect_flavor(path)


def test_objects_pick_their_flavor(
    flv_onnx: dict[str, Any],
    flv_xgb_classifier: Any,
    flv_xgb_booster: Any,
    flv_lgbm_classifier: Any,
    flv_lgb_booster: Any,
    flv_logreg: Any,
) -> None:
    assert flavor_for_object(flv_onnx["zipmap"]).name == "onnx"
    assert flavor_for_object(flv_xgb_classifier).name == "xgboost"
    assert flavor_for_object(flv_xgb_booster).name == "xgboost"
    assert flavor_for_object(flv_lgbm_classifier).name == "lightgbm"
    assert flavor_for_object(flv_lgb_booster).name == "lightgbm"
    assert flavor_for_object(flv_logreg).name == "sklearn"


@pytest.mark.parametrize(
    ("flavor", "fixture", "key", "module", "extra"),
    [
        ("onnx", "flv_onnx_files", "zipmap", "onnxruntime", "onnx"),
        ("sklearn", "flv_files", "skops", "skops", "skops"),
        ("xgboost", "flv_files", "xgb_json", "xgboost", "xgboost"),
        ("lightgbm", "flv_files", "lgb_booster", "lightgbm", "lightgbm"),
        ("mlflow", "flv_mlflow_pyfunc", "", "mlflow", "mlflow"),
    ],
)
def test_missing_library_names_the_extra(
    flavor: str,
    fixture: str,
    key: str,
    module: str,
    extra: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = request.getfixturevalue(fixture)
    path = value[key] if key else value
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependency, match=rf"pip install 'ferry-ml\[{extra}\]'") as info:
        get_flavor(flavor).load(path, {})
    assert info.value.code == "missing_dependency"
    assert isinstance(info.value, FlavorError)


@pytest.mark.parametrize(
    ("flavor", "filename"),
    [("onnx", "broken.onnx"), ("xgboost", "broken.json"), ("lightgbm", "broken.txt")],
)
def test_broken_file_raises_flavor_error_naming_it(
    flavor: str, filename: str, tmp_path: Path
) -> None:
    path = tmp_path / filename
    path.write_bytes(b"tree\nversion=v4\nthis is not a model")
    with pytest.raises(FlavorError, match=filename):
        get_flavor(flavor).load(path, {})


# --- skops and library versions ------------------------------------------------------------
def test_skops_rejects_untrusted_types(
    flv_iris: Any, flv_iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    import operator

    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = flv_iris
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=1000))
    model.fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    with pytest.raises(FlavorError, match="not trusted") as info:
        ferry.model.load(path)
    assert info.value.details["untrusted"] == sio.get_untrusted_types(file=path)

    trusted = ",".join(sio.get_untrusted_types(file=path))
    ferry.model.save(path, tmp_path / "bundle", example=flv_iris_rows, options={"trusted": trusted})
    loaded = ferry.model.load(tmp_path / "bundle")
    assert_same(loaded.predict(flv_iris_rows), model.predict(flv_iris_rows), 0)


@pytest.mark.parametrize(
    ("fixture", "library"),
    [
        ("flv_logreg", "scikit-learn"),
        ("flv_xgb_classifier", "xgboost"),
        ("flv_lgb_booster", "lightgbm"),
    ],
)
def test_library_version_mismatch_warns(
    fixture: str, library: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = request.getfixturevalue(fixture)
    rows = request.getfixturevalue(
        "flv_diabetes_rows" if library == "lightgbm" else "flv_iris_rows"
    )
    ferry.model.save(model, tmp_path / "bundle", example=rows)
    manifest_path = tmp_path / "bundle" / "ferry.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    assert library in manifest["libraries"]
    manifest["libraries"][library] = "0.0.1"
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    with pytest.warns(LibraryVersionWarning, match=rf"saved with {library} 0\.0\.1"):
        loaded = ferry.model.load(tmp_path / "bundle")
    assert len(loaded.predict(rows)) == len(rows)


def test_custom_load_failure_is_a_flavor_error(flv_custom: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "predictor.py"  # the file without its assets folder
    shutil.copyfile(flv_custom, lonely)
    with pytest.raises(FlavorError, match=r"predictor\.py:IrisPredictor\.load"):
        get_flavor("custom").load(Path(f"{lonely}:IrisPredictor"), {})
