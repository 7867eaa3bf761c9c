"""The allowlist: the names real models need are in it, names that reach the OS, import by name,
evaluate code or fetch attributes are not, whatever library they hide in."""

from __future__ import annotations

import pytest

from ferry.model.scanner.allowlist import is_allowed
from ferry.model.scanner.stream import Global

DENIED = [
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "builtins.getattr",
    "builtins.setattr",
    "builtins.__import__",
    "builtins.open",
    "builtins.type",
    "builtins.globals",
    "builtins.print",
    "os.system",
    "posix.system",
    "nt.system",
    "os.popen",
    "subprocess.Popen",
    "subprocess.check_output",
    "sys.modules",
    "importlib.import_module",
    "runpy._run_code",
    "pickle.loads",
    "_pickle.loads",
    "functools.reduce",
    "operator.attrgetter",
    "operator.methodcaller",
    "collections.namedtuple",  # builds a class with exec
    "numpy.load",  # unpickles another file
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.core._ufunc_reconstruct",  # imports any module and fetches any name
    "numpy._core._ufunc_reconstruct",
    "joblib.load",
    "joblib.Parallel",
    "sklearn.datasets.fetch_openml",
    "sklearn.datasets._svmlight_format_io.dump_svmlight_file",
    "sklearn.utils._testing.assert_run_python_script_without_output",
    "sklearn.utils._testing.TempMemmap",
    "sklearn.utils.parallel.Parallel",
    "sklearn.utils.validation.check_memory",
    "sklearn.base.clone",
    "sklearn.tests.test_base.T",
    "sklearn.pipeline.__builtins__",
    "xgboost.testing.make_categorical",
    "xgboost.tracker.RabitTracker",
    "xgboost.dask.DaskXGBClassifier",
    "lightgbm.dask.DaskLGBMClassifier",
    "sklearn_fake.Pipeline",
    "pandas.read_pickle",
    "pandas.eval",
    "scipy.io.loadmat",
]

ALLOWED = [
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.tree._tree.Tree",
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss",
    "sklearn.metrics._classification.accuracy_score",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.core.Booster",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.basic.Booster",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
    "numpy.float64",
    "numpy.log1p",
    "numpy.dtypes.Float64DType",
    "numpy.random._pickle.__randomstate_ctor",
    "scipy.sparse._csr.csr_matrix",
    "pandas.core.frame.DataFrame",
    "builtins.slice",
    "copyreg._reconstructor",
    "collections.OrderedDict",
    "functools.partial",
    "joblib.numpy_pickle.NumpyArrayWrapper",
]


def _global(dotted: str) -> Global:
    module, _, name = dotted.rpartition(".")
    return Global(module, name)


@pytest.mark.parametrize("dotted", DENIED)
def test_dangerous_names_are_denied(dotted: str) -> None:
    assert not is_allowed(_global(dotted))


@pytest.mark.parametrize("dotted", ALLOWED)
def test_names_models_need_are_allowed(dotted: str) -> None:
    assert is_allowed(_global(dotted))


def test_a_dotted_attribute_walk_is_denied_even_from_an_allowed_class() -> None:
    assert not is_allowed(Global("collections", "OrderedDict.fromkeys"))
    assert not is_allowed(Global("sklearn.pipeline", "Pipeline.__init__"))
    assert not is_allowed(Global("sklearn.pipeline", "Pipeline.__init__.__globals__"))
    assert not is_allowed(Global("sklearn.base", "BaseEstimator.__reduce__"))
