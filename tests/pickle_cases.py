"""Model files for the pickle scanner's tests: real fitted models written every way users write
them (pickle protocols 0-5, joblib plain and compressed), and malicious files whose payload
runs a shell command that creates a marker file, hidden where scanners miss it."""

from __future__ import annotations

import functools
import io
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

JOBLIB_COMPRESSIONS: dict[str, Any] = {
    "zlib": 3,
    "gzip": ("gzip", 3),
    "bz2": ("bz2", 3),
    "lzma": ("lzma", 3),
    "xz": ("xz", 3),
}


class RunsShell:
    """Unpickling this runs ``touch MARKER`` (pickled as ``posix.system``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@functools.cache
def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = X.copy()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    rng = np.random.default_rng(0)
    frame["color"] = rng.choice(["red", "green", "blue"], len(frame))
    return frame, y


@functools.cache
def benign_models() -> dict[str, Any]:
    """scikit-learn pipelines, forests and boosting, XGBoost and LightGBM (sklearn API)."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = iris_frame()
    numbers = frame.drop(columns="color")
    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), list(numbers.columns)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    return {
        "pipeline": Pipeline([("pre", columns), ("clf", LogisticRegression(max_iter=500))]).fit(
            frame, y
        ),
        "random_forest": RandomForestClassifier(n_estimators=8, random_state=0).fit(numbers, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=8).fit(numbers, y),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=8).fit(numbers, y),
        "logistic_regression": LogisticRegression(max_iter=500).fit(numbers, y),
        "xgboost": xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(numbers, y),
        "lightgbm": lgb.LGBMClassifier(n_estimators=4, verbose=-1).fit(numbers, y),
    }


def dump_every_way(obj: object, folder: Path, stem: str) -> list[Path]:
    """``obj`` as pickles (protocols 0-5) and joblib files (plain, protocol 2, compressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for protocol in range(6):
        path = folder / f"{stem}.p{protocol}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        paths.append(path)
    for name, compress in {"plain": 0, **JOBLIB_COMPRESSIONS}.items():
        path = folder / f"{stem}.{name}.joblib"
        joblib.dump(obj, path, compress=compress)
        paths.append(path)
    path = folder / f"{stem}.jp2.joblib"
    joblib.dump(obj, path, protocol=2)
    paths.append(path)
    return paths


def forest() -> Any:
    return benign_models()["random_forest"]


def malicious_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Files that run ``touch marker`` when loaded, each hiding the payload differently."""
    folder.mkdir(parents=True, exist_ok=True)
    evil = RunsShell(marker)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(data)

    for protocol in range(6):
        put(f"plain.p{protocol}.pkl", pickle.dumps(evil, protocol=protocol))
    buffer = io.BytesIO()
    # the payload is pickled after the forest, so after every one of its numpy buffers
    joblib.dump([forest(), evil], buffer)
    put("after_forest_buffers.joblib", buffer.getvalue())
    buffer = io.BytesIO()
    joblib.dump(forest(), buffer)
    put("second_pickle_after_forest.joblib", buffer.getvalue() + pickle.dumps(evil, protocol=4))
    pipeline = benign_models()["pipeline"]
    buffer = io.BytesIO()
    joblib.dump({"model": pipeline, "hook": evil}, buffer)
    put("dict_next_to_pipeline.joblib", buffer.getvalue())
    put("dict_next_to_pipeline.pkl", pickle.dumps({"model": pipeline, "hook": evil}, protocol=5))
    for name, compress in JOBLIB_COMPRESSIONS.items():
        buffer = io.BytesIO()
        joblib.dump([forest(), evil], buffer, compress=compress)
        put(f"after_forest_buffers.{name}.joblib", buffer.getvalue())
    buffer = io.BytesIO()
    # an object array is written by joblib as a nested pickle inside the stream
    joblib.dump({"model": forest(), "extra": np.array([1, evil], dtype=object)}, buffer)
    put("inside_object_array.joblib", buffer.getvalue())
    put("stack_global_from_memo.pkl", stack_global_from_memo(marker))
    return files


def stack_global_from_memo(marker: Path) -> bytes:
    """``posix.system`` built by STACK_GLOBAL from strings fetched back out of the memo."""
    command = f"touch {marker}".encode()
    return b"".join(
        [
            b"\x80\x04",
            b"\x8c\x05posix\x94",  # SHORT_BINUNICODE, MEMOIZE (slot 0)
            b"\x8c\x06system\x94",  # slot 1
            b"00",  # POP POP: nothing on the stack now names the module
            b"h\x00h\x01",  # BINGET 0, BINGET 1
            b"\x93",  # STACK_GLOBAL
            b"\x8c" + struct.pack("<B", len(command)) + command,
            b"\x85R.",  # TUPLE1 REDUCE STOP
        ]
    )


class Call:
    """Unpickling this calls ``func(*args)``; ``func`` and the arguments may be ``Call``s too,
    so chains (``getattr(__import__('os'), 'system')(cmd)``) pickle as nested REDUCEs."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __call__(self) -> None:  # pickle wants a callable as the reduce function
        raise AssertionError("never called: only unpickled")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


def classic_payloads(folder: Path, marker: Path) -> dict[str, Path]:
    """The 28 classic payloads: ``malicious_files`` (``posix.system`` in every protocol, after
    joblib buffers, compressed, concatenated, in object arrays, through the memo) and eleven
    more ways to reach a shell: eval and exec, getattr and attrgetter chains, partial,
    copyreg's reconstructor, Popen, runpy, a nested pickle, and a benign pickle followed by
    an evil one. Each runs ``touch marker`` when loaded by the reader its suffix names
    (``.joblib``: joblib.load, ``.pkl``: joblib.load too, which is what Ferry uses)."""
    import builtins
    import copyreg
    import operator
    import runpy
    import subprocess

    files = malicious_files(folder, marker)
    command = f"touch {marker}"
    system = Call(builtins.getattr, Call(builtins.__import__, "os"), "system")
    extra: dict[str, tuple[object, int]] = {
        "eval.p0.pkl": (Call(builtins.eval, f"__import__('os').system({command!r})"), 0),
        "eval.p4.pkl": (Call(builtins.eval, f"__import__('os').system({command!r})"), 4),
        "exec.p2.pkl": (Call(builtins.exec, f"import os; os.system({command!r})"), 2),
        "getattr_import_chain.pkl": (Call(system, command), 4),
        "attrgetter_chain.pkl": (
            Call(Call(operator.attrgetter("system"), Call(builtins.__import__, "os")), command),
            3,
        ),
        "partial.pkl": (Call(functools.partial(os.system, command)), 4),
        "copyreg_reconstructor_popen.pkl": (
            Call(
                copyreg._reconstructor, subprocess.Popen, subprocess.Popen, ["touch", str(marker)]
            ),  # type: ignore[attr-defined]
            2,
        ),
        "popen.p3.pkl": (Call(subprocess.Popen, ["touch", str(marker)]), 3),
        "runpy_run_code.pkl": (
            Call(runpy._run_code, f"import os; os.system({command!r})", {}),  # type: ignore[attr-defined]
            4,
        ),
        "nested_pickle_loads.pkl": (Call(pickle.loads, pickle.dumps(RunsShell(marker))), 2),
    }
    for name, (payload, protocol) in extra.items():
        files[name] = folder / name
        files[name].write_bytes(pickle.dumps(payload, protocol=protocol))
    files["benign_then_evil.pkl"] = folder / "benign_then_evil.pkl"
    files["benign_then_evil.pkl"].write_bytes(
        pickle.dumps({"coef": [1.0, 2.0]}, protocol=2) + pickle.dumps(RunsShell(marker), protocol=0)
    )
    return files
