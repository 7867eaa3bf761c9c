"""The names a model pickle may import: what scikit-learn, XGBoost, LightGBM, numpy, scipy and
pandas objects need to be rebuilt, and nothing that reaches the OS, imports by name, evaluates
code or fetches attributes.

Built from real pickles and joblib files of fitted models (protocols 0-5, compressed and not:
tests/unit/model/test_pickle_scanner.py). Everything a pickle imports may be *called* with any
arguments by a crafted file, so each exact entry must be harmless when called: classes whose
constructors only store values, numpy math, and the reconstruction helpers pickles of these
libraries use. Model libraries are matched by module prefix, but only for class names (and the
Cython unpickle helpers), and never in their testing, dataset-download or distributed modules;
``resolve`` then checks what such a name really is and what unpickling it runs.
"""

from __future__ import annotations

from typing import Literal

from ferry.model.scanner.stream import Global

# --- exact names ------------------------------------------------------------------------------
_BUILTINS = {
    "object", "bool", "int", "float", "complex", "str", "bytes", "bytearray", "list", "tuple",
    "dict", "set", "frozenset", "slice", "range",
}  # fmt: skip
_NUMPY_SCALARS = {
    "bool", "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "intc", "uintc", "intp", "uintp", "longlong", "ulonglong", "short", "ushort", "byte", "ubyte",
    "float16", "float32", "float64", "longdouble", "half", "single", "double", "complex64",
    "complex128", "clongdouble", "csingle", "cdouble", "object_", "str_", "bytes_", "void",
    "datetime64", "timedelta64", "generic", "number", "integer", "signedinteger",
    "unsignedinteger", "floating", "inexact", "complexfloating",
}  # fmt: skip
# element-wise math a FunctionTransformer or TransformedTargetRegressor may hold
_NUMPY_MATH = {
    "log", "log1p", "log2", "log10", "exp", "expm1", "exp2", "sqrt", "cbrt", "square",
    "absolute", "abs", "negative", "positive", "sign", "reciprocal", "sin", "cos", "tan",
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
    "floor", "ceil", "rint", "trunc", "add", "subtract", "multiply", "divide", "true_divide",
    "power", "maximum", "minimum", "fmax", "fmin", "isnan", "isfinite", "isinf", "clip", "mean",
    "median", "sum", "nanmean", "nanmedian", "nansum", "std", "var", "min", "max", "round",
}  # fmt: skip
_NUMPY_CORE = {
    "multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer",
}  # fmt: skip
_NUMPY_RANDOM = {
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random", "__RandomState_ctor"),
    ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._generator", "Generator"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
}
_PANDAS = {
    ("pandas", name)
    for name in (
        "DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "CategoricalIndex",
        "DatetimeIndex", "Categorical", "CategoricalDtype", "StringDtype", "Timestamp",
        "Timedelta", "Interval", "IntervalIndex", "Int64Dtype", "Float64Dtype", "BooleanDtype",
    )
} | {
    ("pandas.arrays", "StringArray"),
    ("pandas.arrays", "Categorical"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.series", "Series"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.indexes.multi", "MultiIndex"),
    ("pandas.core.indexes.category", "CategoricalIndex"),
    ("pandas.core.indexes.datetimes", "DatetimeIndex"),
    ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals.managers", "SingleBlockManager"),
    ("pandas.core.internals.blocks", "new_block"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas.core.arrays.categorical", "Categorical"),
    ("pandas.core.arrays.string_", "StringArray"),
    ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas.core.arrays.datetimes", "DatetimeArray"),
    ("pandas.core.arrays.integer", "IntegerArray"),
    ("pandas.core.arrays.floating", "FloatingArray"),
    ("pandas.core.arrays.boolean", "BooleanArray"),
    ("pandas.core.dtypes.dtypes", "CategoricalDtype"),
    ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
}  # fmt: skip
_SCIPY_SPARSE = {
    (f"scipy.sparse.{private}{fmt}", f"{fmt}_{kind}")
    for fmt in ("csr", "csc", "coo", "dia", "bsr", "lil", "dok")
    for kind in ("matrix", "array")
    for private in ("_", "")
}
_OTHER = {
    ("copyreg", "_reconstructor"),  # object.__new__(cls) for protocols 0 and 1
    ("_codecs", "encode"),  # how protocols 0-2 write bytes
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("collections", "Counter"),
    ("collections", "deque"),
    ("functools", "partial"),  # its function is another import, checked on its own
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),  # its data is skipped by the scanner
    ("numpy.ma.core", "MaskedArray"),
    ("numpy.ma.core", "_mareconstruct"),
    ("numpy.matrixlib.defmatrix", "matrix"),
    ("scipy.interpolate._interpolate", "interp1d"),
    ("scipy.interpolate.interpolate", "interp1d"),
    ("sklearn.utils.validation", "check_array"),  # held by HistGradientBoosting's encoder
}

ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {("builtins", name) for name in _BUILTINS}
    | {("numpy", name) for name in _NUMPY_SCALARS | _NUMPY_MATH | {"dtype", "ndarray"}}
    | {
        (f"{package}.{module}", name)
        for package in ("numpy.core", "numpy._core")
        for module, _, name in (entry.rpartition(".") for entry in _NUMPY_CORE)
    }
    | _NUMPY_RANDOM
    | _PANDAS
    | _SCIPY_SPARSE
    | _OTHER
)

# --- model libraries, by prefix -----------------------------------------------------------------
MODEL_LIBRARIES = ("sklearn", "xgboost", "lightgbm")
# modules of those libraries that download, write files, run scripts or start processes
DENIED_MODULES = (
    "sklearn.datasets",
    "sklearn.utils._testing",
    "sklearn.utils.parallel",
    "sklearn.utils._show_versions",
    "sklearn.externals",
    "sklearn.experimental",
    "xgboost.testing",
    "xgboost.dask",
    "xgboost.spark",
    "xgboost.tracker",
    "xgboost.collective",
    "xgboost.federated",
    "lightgbm.dask",
)
# pure functions scorers and metrics are pickled by
_FUNCTION_MODULES = ("sklearn.metrics",)


# Python methods of model-library classes that a pickle may run, each read: they only set
# attributes or rebuild a native handle from bytes in the state. Any other Python
# ``__setstate__``, ``__init__`` or ``__new__`` of a class admitted by prefix is refused
# (``sklearn.callback.ScoringMonitor.__setstate__`` connects to a socket it is given).
REVIEWED_METHODS = frozenset(
    {
        "sklearn.base.BaseEstimator.__setstate__",  # a version check, then __dict__.update
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor.__setstate__",
        "sklearn.isotonic.IsotonicRegression.__setstate__",  # rebuilds interp1d from arrays
        "sklearn.utils._bunch.Bunch.__setstate__",  # a no-op
        "xgboost.core.Booster.__setstate__",  # XGBoosterUnserializeFromBuffer of its bytes
        "lightgbm.basic.Booster.__setstate__",  # LGBM_BoosterLoadModelFromString
        "lightgbm.engine.CVBooster.__setstate__",  # vars(self).update
    }
)
# Calls whose integer arguments are values, not sizes: timestamps in nanoseconds, timedelta
# days, numbers themselves. Every other call's integers are bounded (resolve.size_limit).
SIZE_EXEMPT = frozenset(
    {
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "complex"),
        ("builtins", "slice"),  # a slice holds its bounds, it allocates nothing
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("pandas", "Timestamp"),
        ("pandas", "Timedelta"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    }
)


def is_allowed(name: Global) -> bool:
    """True when a model pickle may import ``name``."""
    if name.key in ALLOWED:
        return True
    if name.module == "numpy.dtypes" and name.name.endswith("DType") and name.name.isidentifier():
        return True
    return _model_library_name(name.module, name.name)


def _model_library_name(module: str, name: str) -> bool:
    package = module.split(".", 1)[0]
    if package not in MODEL_LIBRARIES or not name.isidentifier():
        return False
    if not all(part.isidentifier() for part in module.split(".")):
        return False
    if _within(module, DENIED_MODULES) or ".tests" in f".{module}." or "tests" in module.split("."):
        return False
    if is_prefix_name(name, "class") or is_prefix_name(name, "unpickler"):
        return True
    return _within(module, _FUNCTION_MODULES) and not name.startswith("_")


def is_prefix_name(name: str, kind: Literal["class", "unpickler"]) -> bool:
    """A model library's name admitted by its shape: a class (estimators, trees, losses,
    boosters, ``_BinMapper`` too), or a Cython unpickle helper (``cls.__new__(cls)`` with a
    checksum test). ``resolve`` then checks that the object really is one of the library's."""
    if kind == "class":
        return not name.startswith("__") and name.lstrip("_")[:1].isupper()
    return name == "newObj" or name.startswith("__pyx_unpickle_")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)
