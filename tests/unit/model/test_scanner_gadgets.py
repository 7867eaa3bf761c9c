"""The scanner judges a name by what it resolves to and a class by what unpickling it runs:
re-exported dangerous callables, classes whose ``__setstate__`` does I/O, and allocation bombs
are refused; the real models keep passing (test_pickle_scanner.py)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from ferry.model.scanner.resolve import MIN_SIZE_LIMIT, Resolver, size_limit
from ferry.model.scanner.scan import scan_file
from ferry.model.scanner.stream import Global
from tests.attack_corpus import build, ran, watching

GADGETS = {
    "gadget_tempfile": ("lightgbm.basic.NamedTemporaryFile", "tempfile.NamedTemporaryFile"),
    "gadget_listener": (
        "sklearn.callback._transport.Listener",
        "multiprocessing.connection.Listener",
    ),
    "gadget_scoring_monitor": (
        "sklearn.callback._scoring_monitor.ScoringMonitor",
        "ScoringMonitor.__setstate__",
    ),
}


@pytest.mark.parametrize("kind", list(GADGETS))
def test_the_gadgets_are_real(kind: str, tmp_path: Path) -> None:
    """Loaded by joblib in a child process, each gadget leaves its trace."""
    marker = tmp_path / "MARKER"
    path = build(kind, tmp_path / "model", marker)
    code = f"import joblib, time; kept = joblib.load({str(path)!r}); time.sleep(0.2)"
    with watching(kind, marker):
        subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert ran(marker), kind


@pytest.mark.parametrize("kind", list(GADGETS))
def test_gadgets_are_refused_by_what_they_resolve_to(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    scan = scan_file(build(kind, tmp_path / "model", marker))
    imported, real = GADGETS[kind]
    assert imported in scan.unsafe, scan
    assert any(real in reason for reason in scan.reasons), scan.reasons
    assert not ran(marker)


def test_a_re_export_is_judged_by_its_real_name() -> None:
    judge = Resolver()
    assert judge.judge_name(Global("sklearn.pipeline", "Pipeline")) is None
    assert judge.judge_name(Global("lightgbm.sklearn", "LGBMClassifier")) is None
    reason = judge.judge_name(Global("lightgbm.basic", "NamedTemporaryFile"))
    assert reason is not None
    assert "tempfile.NamedTemporaryFile" in reason
    # a capitalized name of a model library that is not a class at all
    assert judge.judge_name(Global("sklearn.utils", "Nope")) is not None


def test_only_the_allowlists_packages_are_imported_to_resolve(tmp_path: Path) -> None:
    """A module outside the model libraries is never imported, however it is named."""
    package = tmp_path / "evilpkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Model: ...\n")
    sys.path.insert(0, str(tmp_path))
    try:
        data = b"\x80\x02cevilpkg\nModel\n)\x81."
        path = tmp_path / "m.pkl"
        path.write_bytes(data)
        assert scan_file(path).unsafe == ("evilpkg.Model",)
        assert Resolver().resolve(Global("evilpkg", "Model")).problem is not None
    finally:
        sys.path.remove(str(tmp_path))
    assert not marker.exists()


def test_a_class_whose_setstate_does_io_is_not_built(tmp_path: Path) -> None:
    """``ScoringMonitor.__new__`` is harmless, its ``__setstate__`` connects out: built with
    even an empty state, the pickle is refused."""
    head = b"\x80\x02csklearn.callback._scoring_monitor\nScoringMonitor\n)\x81"
    path = tmp_path / "m.pkl"
    path.write_bytes(head + b".")
    assert scan_file(path).ok  # created, never built: nothing of it runs
    path.write_bytes(head + b"}b.")
    scan = scan_file(path)
    assert scan.unsafe == ("sklearn.callback._scoring_monitor.ScoringMonitor",)
    assert "__setstate__" in scan.reasons[0]


def test_a_library_class_whose_init_is_python_is_not_called(tmp_path: Path) -> None:
    # xgboost.core.Booster(params, cache, model_file) reads any file: pickles only __new__ it
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02cxgboost.core\nBooster\n(NN\x8c\x0b/etc/passwdtR.")
    scan = scan_file(path)
    assert scan.unsafe == ("xgboost.core.Booster",)
    assert "Booster.__init__" in scan.reasons[0]


def test_build_on_an_imported_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02csklearn.pipeline\nPipeline\n}b.")
    assert "BUILD on an imported name" in (scan_file(path).error or "")


def test_the_bytearray_bomb_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = build("bytearray_bomb", tmp_path / "model", marker)
    assert path.stat().st_size == 32
    scan = scan_file(path)
    assert scan.unsafe == ("builtins.bytearray",)
    assert "3000000000" in scan.reasons[0]


BOMBS = {
    "bytes": b"\x80\x02cbuiltins\nbytes\n\x8a\x05\x00^\xd0\xb2\x00\x85R.",
    # numpy's _reconstruct(ndarray, shape, dtype char): ndarray.__new__ of that shape
    "reconstruct_shape": (
        b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\x00\x01\x00J\x00\x00\x01\x00\x86C\x01b\x87R."
    ),
    "ndarray_newobj": b"\x80\x02cnumpy\nndarray\n\x8a\x05\x00^\xd0\xb2\x00\x85\x85\x81.",
    "list_of_range": (
        b"\x80\x02cbuiltins\nlist\ncbuiltins\nrange\n\x8a\x05\x00^\xd0\xb2\x00\x85R\x85R."
    ),
    "tree_outputs": (
        b"\x80\x02csklearn.tree._tree\nTree\nK\x04cnumpy\nndarray\n)\x81"
        b"\x8a\x05\x00^\xd0\xb2\x00\x87R."
    ),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_allocation_sizes_are_bounded(name: str, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(BOMBS[name])
    scan = scan_file(path)
    assert scan.unsafe, (name, scan)
    assert any("over the limit" in reason for reason in scan.reasons), scan.reasons


def test_sizes_that_are_values_pass(tmp_path: Path) -> None:
    """Timestamps and timedeltas carry big integers that size nothing; real data of a size
    below the limit passes."""
    import datetime

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([datetime.timedelta(days=999_999_999), bytearray(1000)], 2))
    assert scan_file(path).ok
    assert size_limit(10) == MIN_SIZE_LIMIT
    assert size_limit(1 << 30) == 1 << 30
