"""skops files load only named safe types: skops' own, classes proven to be data, and what
the user trusts; a schema node ``builtins.exec`` is refused before anything is constructed."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import ferry.model
from ferry.errors import FlavorError
from ferry.model.flavors import sklearn as flavor
from ferry.packaging import wheel_runtime
from tests.attack_corpus import build, ran
from tests.pickle_cases import benign_models, iris_frame

skops_io = pytest.importorskip("skops.io")


def test_the_exec_file_is_real(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = build("skops_exec", tmp_path / "model", marker)
    code = (
        f"import skops.io as s; p = {str(path)!r}; s.load(p, trusted=s.get_untrusted_types(file=p))"
    )
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert ran(marker)


def test_the_exec_file_is_refused_even_with_trust(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = build("skops_exec", tmp_path / "model", marker)
    for trust in (False, True):  # trust vouches for pickles and code, never for skops types
        with pytest.raises(FlavorError, match=r"builtins\.exec"):
            ferry.model.load(path, trust=trust)
    with pytest.raises(ValueError, match=r"builtins\.exec"):
        wheel_runtime._load(path, {})
    assert not ran(marker)


@pytest.mark.parametrize(
    "name",
    [
        "builtins.exec",
        "builtins.eval",
        "builtins.getattr",
        "builtins.open",
        "builtins.__import__",
        "collections.namedtuple",
        "numpy.load",
        "numpy.fromfile",
        "scipy.io.loadmat",
        "sklearn.utils.validation.check_array",  # a function, however harmless
        "sklearn.utils.fixes.parse_version",  # a re-export
        "sklearn.callback._scoring_monitor.ScoringMonitor",  # __setstate__ connects out
        "sklearn.callback._transport.Listener",  # multiprocessing's, re-exported
        "lightgbm.basic.NamedTemporaryFile",
        "xgboost.core.Booster",  # its __init__ reads a file; not a library skops knows
        "os.system",
        "sklearn.tests.test_base.T",
    ],
)
def test_dangerous_or_unproven_types_stay_untrusted(name: str) -> None:
    assert flavor.skops_untrusted([name], []) == [name]
    assert wheel_runtime.skops_untrusted([name], []) == [name]
    assert flavor.skops_untrusted([name], [name]) == []  # the user may still name it


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.pipeline.Pipeline",
        "collections.OrderedDict",
    ],
)
def test_data_classes_are_trusted(name: str) -> None:
    assert flavor.skops_untrusted([name], []) == []


def test_real_estimators_load_from_skops(tmp_path: Path) -> None:
    frame, _ = iris_frame()
    for name in ("pipeline", "random_forest", "gradient_boosting", "hist_gradient_boosting"):
        model = benign_models()[name]
        path = tmp_path / f"{name}.skops"
        skops_io.dump(model, path)
        estimator = ferry.model.load(path).predictor.estimator  # type: ignore[attr-defined]
        rows = (frame if name == "pipeline" else frame.drop(columns="color")).head(20)
        given = rows if name == "pipeline" else rows.to_numpy()  # Ferry drops checked names
        assert estimator.predict(given).tolist() == model.predict(rows).tolist()


def test_the_wheel_runtime_holds_the_same_rule() -> None:
    """The wheel cannot import ferry, so it keeps a copy: the same code, word for word."""
    for name in ("skops_untrusted", "_skops_data_type"):
        assert inspect.getsource(getattr(flavor, name)) == inspect.getsource(
            getattr(wheel_runtime, name)
        )
    for constant in ("_SKOPS_LIBRARIES", "_SKOPS_EXACT", "_SKOPS_REVIEWED"):
        assert getattr(flavor, constant) == getattr(wheel_runtime, constant)
