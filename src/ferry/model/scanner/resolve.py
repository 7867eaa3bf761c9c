"""What an imported name really is, and whether the way a pickle uses it is harmless.

The allowlist (``allowlist``) names what a model pickle may import. A name admitted by a
library *prefix* (a class of scikit-learn, XGBoost or LightGBM) is not trusted for its path:
libraries re-export what they import (``lightgbm.basic.NamedTemporaryFile`` is
``tempfile.NamedTemporaryFile``, ``sklearn.callback._transport.Listener`` is
``multiprocessing.connection.Listener``). Such a name is imported, as the unpickler would, and
judged by the object's own ``__module__`` and ``__qualname__``; it must really be a class of
that library. Only modules of the model libraries (and ``numpy.dtypes``) are ever imported
here, and only after the path itself passed the allowlist; exact entries are reviewed objects,
harmless however they are called, and are not imported.

What a pickle does with a class is judged too (``judge_use``): ``BUILD`` runs the class's
``__setstate__``, a call runs ``__init__``, ``NEWOBJ`` runs ``__new__``. For the prefix
classes those methods must be C/Cython code or a Python method in ``allowlist.REVIEWED_METHODS``
(``sklearn.callback.ScoringMonitor.__setstate__`` opens a socket: it is not there). And every
call's integer arguments are bounded (``size_limit``), so a 31-byte ``bytearray(3000000000)``
is refused instead of allocating 2.8 GB.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass

from ferry.model.scanner.allowlist import (
    ALLOWED,
    MODEL_LIBRARIES,
    REVIEWED_METHODS,
    SIZE_EXEMPT,
    is_allowed,
    is_prefix_name,
)
from ferry.model.scanner.stream import Global, Use

# Sizes up to this are always accepted: 16 MiB elements (128 MB of float64 at most), above any
# honest size argument a model's pickle holds (tree n_features/n_outputs, dtype flags); bigger
# sizes must be backed by the file's own bytes (``size_limit``).
MIN_SIZE_LIMIT = 1 << 24
# the methods each use of a class runs
_METHODS: dict[Use, tuple[str, ...]] = {
    "call": ("__new__", "__init__"),
    "new": ("__new__",),
    "build": ("__setstate__",),
}


def size_limit(pickle_bytes: int) -> int:
    """The largest integer (and product of a tuple's integers) a call may take.

    An allocating call (``bytearray(n)``, ``ndarray.__new__(cls, shape)``, a sparse matrix
    shape, ``Tree(n_features, n_classes, n_outputs)``) builds an object from the file's own
    bytes in an honest pickle: arrays arrive with their data (joblib's raw buffers,
    ``_reconstruct`` then ``BUILD`` with the bytes). So a size is bounded by the bytes the
    pickle holds, with a floor for small files.
    """
    return max(MIN_SIZE_LIMIT, pickle_bytes)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The object a name imports, or why it is refused (``problem``)."""

    obj: object = None
    identity: Global | None = None
    problem: str | None = None


class Resolver:
    """Resolves and judges names, each once per scan (a scan's own cache)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Resolved] = {}

    def resolve(self, name: Global) -> Resolved:
        hit = self._cache.get(name.key)
        if hit is None:
            hit = self._cache[name.key] = _resolve(name)
        return hit

    def judge_name(self, name: Global) -> str | None:
        """Why a pickle may not import ``name`` (None: it may)."""
        if not is_allowed(name):
            return "not on the allowlist"
        if name.key in ALLOWED:
            return None  # a reviewed object, named by its exact path
        resolved = self.resolve(name)
        if resolved.problem is not None:
            return resolved.problem
        identity = resolved.identity
        if identity is None:
            return "cannot tell what it is"
        if identity.key in ALLOWED:
            return None
        if not is_allowed(identity):
            return f"it is {identity}, which is not on the allowlist"
        library = identity.module.split(".", 1)[0] in MODEL_LIBRARIES
        if (
            library
            and is_prefix_name(identity.name, "class")
            and not isinstance(resolved.obj, type)
        ):
            return f"it is {identity}, a {type(resolved.obj).__name__}, not a class"
        return None

    def judge_use(self, name: Global, use: Use) -> str | None:
        """Why the pickle may not ``use`` the (allowed) name: call it, ``__new__`` it, or
        ``BUILD`` an instance of it."""
        if name.key in ALLOWED or not is_allowed(name):
            return None  # exact entries are harmless however called; refused names already are
        resolved = self.resolve(name)
        cls = resolved.obj
        if resolved.problem is not None or not isinstance(cls, type):
            return None
        for method in _METHODS[use]:
            function = getattr(cls, method, None)
            if not inspect.isfunction(function):
                continue  # C or Cython code of the library (or object's own)
            where = f"{function.__module__}.{function.__qualname__}"
            if where not in REVIEWED_METHODS:
                return f"{'BUILD' if use == 'build' else use} runs {where}, which is not reviewed"
        return None

    def judge_size(self, name: Global, largest: int, limit: int) -> str | None:
        if largest <= limit:
            return None
        identity = self.resolve(name).identity if name.key not in ALLOWED else name
        if name.key in SIZE_EXEMPT or (identity is not None and identity.key in SIZE_EXEMPT):
            return None
        if name.name.startswith("__pyx_unpickle_"):
            return None  # Cython's (cls, checksum, state): the checksum is no size
        return f"called with a size of {largest}, over the limit of {limit} for this file"


def _resolve(name: Global) -> Resolved:
    """Import ``name`` as the unpickler would (``find_class``), but only from a package the
    allowlist already names: never an arbitrary module."""
    package = name.module.split(".", 1)[0]
    if package not in _IMPORTABLE or not all(p.isidentifier() for p in name.module.split(".")):
        return Resolved(problem=f"its package {package!r} is not one the scanner imports")
    if not name.name.isidentifier():
        return Resolved(problem="its name is not an identifier")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated module aliases (scipy.sparse.csr)
            module = importlib.import_module(name.module)
            obj = getattr(module, name.name)
    except ImportError as exc:
        return Resolved(problem=f"it cannot be imported here ({type(exc).__name__}: {exc})")
    except AttributeError:
        return Resolved(problem=f"{name.module} has no {name.name!r}")
    return Resolved(obj=obj, identity=_identity(obj))


def _identity(obj: object) -> Global | None:
    """The module and qualified name an object says it has (a ufunc names only itself)."""
    if inspect.ismodule(obj):
        return None
    numpy = importlib.import_module("numpy")
    if isinstance(obj, numpy.ufunc):
        return Global("numpy", obj.__name__)
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    return Global(module, qualname)


# the packages whose modules resolving may import: those the allowlist admits names of by
# prefix (exact entries are never resolved)
_IMPORTABLE = frozenset({*MODEL_LIBRARIES, "numpy"})
