"""The pickle scanner on real model files and on crafted streams: every payload is found (also
after joblib's array buffers, in compressed files, in nested object arrays, behind memo tricks),
every benign model passes, and whatever cannot be parsed is refused."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest

from ferry.errors import UnsafeModel
from ferry.model.scanner.scan import ScanReport, enforce, scan_file, scan_model
from tests.pickle_cases import benign_models, dump_every_way, forest, malicious_files


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "MARKER"
    return malicious_files(folder / "files", marker), marker


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("benign")
    return [
        path
        for name, model in benign_models().items()
        for path in dump_every_way(model, folder, name)
    ]


def test_the_payloads_are_real(tmp_path: Path) -> None:
    """Loading the hardest cases really runs the command (in a child process)."""
    for name in (
        "after_forest_buffers.joblib",
        "inside_object_array.joblib",
        "stack_global_from_memo.pkl",
    ):
        marker = tmp_path / f"{name}.marker"
        path = malicious_files(tmp_path / name, marker)[name]
        code = f"import joblib; joblib.load({str(path)!r})"
        subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
        assert marker.exists(), name


def test_every_malicious_file_is_refused_naming_the_import(
    evil: tuple[dict[str, Path], Path],
) -> None:
    files, marker = evil
    assert len(files) >= 17
    for name, path in files.items():
        scan = scan_file(path)
        assert scan.unsafe == ("posix.system",), (name, scan)
        assert scan.error is None, (name, scan.error)
    assert not marker.exists()


def test_payload_after_the_buffers_is_found_after_skipping_them(
    evil: tuple[dict[str, Path], Path],
) -> None:
    files, _ = evil
    scan = scan_file(files["after_forest_buffers.joblib"])
    n_trees = len(forest().estimators_)
    assert scan.arrays >= 2 * n_trees  # each tree's node and value arrays were skipped
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in scan.globals
    second = scan_file(files["second_pickle_after_forest.joblib"])
    assert second.pickles == 2
    compressed = scan_file(files["after_forest_buffers.xz.joblib"])
    assert compressed.compression == "xz"


def test_every_benign_model_passes(benign: list[Path]) -> None:
    assert len(benign) == 7 * 13
    for path in benign:
        scan = scan_file(path)
        assert scan.ok, (path.name, scan.unsafe, scan.error)
        if path.name.startswith("random_forest") and path.suffix == ".joblib":
            assert scan.arrays > 0, path.name  # joblib's inline buffers were read past


def test_benign_files_also_pass_as_plain_pickles(benign: list[Path]) -> None:
    for path in benign:
        if path.suffix == ".pkl":
            assert scan_file(path, loader="pickle").ok, path.name


# --- crafted streams ----------------------------------------------------------------------------
def scan_bytes(tmp_path: Path, data: bytes, *, loader: str = "joblib", **kw: int) -> str | None:
    path = tmp_path / "crafted.pkl"
    path.write_bytes(data)
    scan = scan_file(path, loader=loader, **kw)  # type: ignore[arg-type]
    return scan.error if scan.error else ",".join(scan.unsafe) or None


def test_truncated_files_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    joblib.dump(forest(), buffer)
    data = buffer.getvalue()
    cuts = [0, 1, 2, 30, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1]
    for cut in cuts:
        error = scan_bytes(tmp_path, data[:cut])
        assert "ends" in (error or ""), (cut, error)
    compressed = zlib.compress(data)[:-50]
    assert scan_bytes(tmp_path, compressed) is not None


@pytest.mark.parametrize(
    ("code", "name"),
    [(b"\x82\x01", "EXT1"), (b"\x83\x01\x00", "EXT2"), (b"\x84\x01\x00\x00\x00", "EXT4")],
)
def test_extension_codes_are_refused(tmp_path: Path, code: bytes, name: str) -> None:
    error = scan_bytes(tmp_path, b"\x80\x02" + code + b")R.")
    assert error is not None
    assert name in error


def test_stack_global_resolves_strings_from_the_memo(
    evil: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    assert scan_file(evil[0]["stack_global_from_memo.pkl"]).unsafe == ("posix.system",)
    # a module name that is not a string: the real unpickler refuses, so does the scanner
    error = scan_bytes(tmp_path, b"\x80\x04K\x01\x8c\x06system\x93.")
    assert error is not None
    assert "STACK_GLOBAL" in error
    # strings through DUP and PUT/GET in protocol 0 text form
    data = b"\x80\x04Vbuiltins\np0\n0Veval\np1\n0g0\ng1\n\x93)R."
    assert scan_bytes(tmp_path, data) == "builtins.eval"


def test_python2_names_are_mapped_like_the_unpickler_maps_them(tmp_path: Path) -> None:
    assert scan_bytes(tmp_path, b"c__builtin__\neval\n(S'1'\ntR.") == "builtins.eval"
    assert scan_bytes(tmp_path, b"ccommands\ngetoutput\n(S'id'\ntR.") == "subprocess.getoutput"
    # protocol 3 and later do not map names
    assert scan_bytes(tmp_path, b"\x80\x03c__builtin__\neval\n)R.") == "__builtin__.eval"


def test_inst_and_obj_are_followed(tmp_path: Path) -> None:
    assert scan_bytes(tmp_path, b"(S'touch x'\nios\nsystem\n.") == "os.system"
    data = b"\x80\x02(cposix\nsystem\nS'touch x'\no."
    assert scan_bytes(tmp_path, data) == "posix.system"


def test_calling_anything_but_an_imported_name_is_refused(tmp_path: Path) -> None:
    error = scan_bytes(tmp_path, b"\x80\x02])R.")
    assert error is not None
    assert "not an imported name" in error


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "ends before"),
        (b"\x80\x02N", "ends before"),
        (b"\x80\x02Pabc\n.", "persistent"),
        (b"\x80\x02K\x01Q.", "persistent"),
        (b"\x80\x05\x97.", "out-of-band"),
        (b"\x80\x02h\x07.", "never set"),
        (b"\x80\x02\xff.", "unknown opcode"),
        (b"\x80\x06N.", "protocol 6"),
        (b"\x80\x02N.\xff\xff", "unknown opcode"),
        (b"\x80\x02N.garbage", "ends inside"),
        (b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + b"N.", "frame"),
        (b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00\x8c\x05aN.", "frame ends inside"),
        (b"\x80\x02t.", "without a MARK"),
        (b"\x80\x02(K\x01d.", "malformed"),
    ],
)
def test_what_cannot_be_parsed_is_refused(tmp_path: Path, data: bytes, words: str) -> None:
    error = scan_bytes(tmp_path, data)
    assert words in (error or ""), error


def test_joblib_arrays_are_refused_where_pickle_would_read_them(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    joblib.dump(np.arange(10.0), buffer)
    assert scan_bytes(tmp_path, buffer.getvalue()) is None
    error = scan_bytes(tmp_path, buffer.getvalue(), loader="pickle")
    assert error is not None
    assert "NumpyArrayWrapper" in error


def test_a_wrapper_joblib_never_writes_is_refused(tmp_path: Path) -> None:
    # NumpyArrayWrapper(ndarray, (2,), 'C', dtype) through __init__: not joblib's layout
    data = (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n"
        b"(cnumpy\nndarray\nK\x02\x85X\x01\x00\x00\x00Ccnumpy\ndtype\nX\x02\x00\x00\x00f8\x85Rt"
        b"R}b."
    )
    error = scan_bytes(tmp_path, data)
    assert error is not None
    assert "unusual" in error


def test_decompression_is_limited(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    joblib.dump(np.zeros(1_000_000), buffer, compress=3)
    assert len(buffer.getvalue()) < 100_000
    error = scan_bytes(tmp_path, buffer.getvalue(), max_bytes=1_000_000)
    assert error is not None
    assert "decompresses to more than" in error
    assert scan_bytes(tmp_path, buffer.getvalue()) is None


@pytest.mark.parametrize("head", [b"\x04\x22\x4d\x18rest", b"ZF0x00000000"])
def test_formats_the_scanner_cannot_read_are_refused(tmp_path: Path, head: bytes) -> None:
    assert scan_bytes(tmp_path, head) is not None


def test_concatenated_pickles_are_all_read(tmp_path: Path) -> None:
    data = pickle.dumps([1, 2], protocol=2) + pickle.dumps({"a": 1}, protocol=4)
    path = tmp_path / "two.pkl"
    path.write_bytes(data + pickle.dumps(print, protocol=4))
    scan = scan_file(path)
    assert (scan.pickles, scan.unsafe) == (3, ("builtins.print",))


# --- which files of a model are scanned ---------------------------------------------------------
def test_a_bundle_and_an_mlflow_folder_have_their_pickles_scanned(
    tmp_path: Path, evil: tuple[dict[str, Path], Path]
) -> None:
    import ferry.model
    from tests.pickle_cases import iris_frame

    frame, _ = iris_frame()
    bundle = tmp_path / "bundle"
    ferry.model.save(benign_models()["pipeline"], bundle, example=frame.head(5))
    report = scan_model(bundle)
    assert [f.path for f in report.files] == ["model/model.joblib"]
    assert report.ok
    # an MLflow folder whose MLmodel names a pickle without a pickle suffix
    mlflow = tmp_path / "mlflow"
    mlflow.mkdir()
    (mlflow / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.bin\n    serialization_format: pickle\n"
    )
    (mlflow / "model.bin").write_bytes(evil[0]["after_forest_buffers.joblib"].read_bytes())
    (mlflow / "extra.pkl").write_bytes(pickle.dumps({"a": 1}))
    report = scan_model(mlflow)
    assert sorted((f.path, f.loader) for f in report.files) == [
        ("extra.pkl", "pickle"),
        ("model.bin", "joblib"),
    ]
    assert report.unsafe_globals == ["posix.system"]
    with pytest.raises(UnsafeModel) as caught:
        enforce(report)
    assert caught.value.details["globals"] == ["posix.system"]
    assert "posix.system" in caught.value.message
    assert "--trust" in caught.value.message
    enforce(ScanReport(report.files, trusted=True))  # trusted: no error
    assert ScanReport(report.files, trusted=True).summary()["verdict"] == "trusted"


def test_non_pickle_formats_are_not_scanned(tmp_path: Path) -> None:
    for name in ("model.onnx", "model.json", "model.txt", "model.skops"):
        (tmp_path / name).write_bytes(b"not a pickle")
        assert scan_model(tmp_path / name).files == ()
    (tmp_path / "model.bin").write_bytes(b"not a pickle")
    assert not scan_model(tmp_path / "model.bin", "sklearn").ok  # forced: joblib will load it


def _u(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _wrapper_stream(dtype_builds: list[bytes], data: bytes) -> bytes:
    """A hand-written joblib array: wrapper (NEWOBJ), its dict with a float64 dtype whose state
    is set by each of ``dtype_builds``, BUILD, then ``data`` as the raw array bytes."""
    dtype = b"cnumpy\ndtype\n" + _u("f8") + b"\x89\x88\x87R" + b"".join(dtype_builds)
    return (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}("
        + _u("shape")
        + b"K\x01\x85"
        + _u("order")
        + _u("C")
        + _u("dtype")
        + dtype
        + b"ub"
        + data
        + b"."
    )


STATE = b"(K\x03" + _u("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"


def test_a_hand_written_joblib_array_is_skipped_exactly(tmp_path: Path) -> None:
    path = tmp_path / "array.joblib"
    path.write_bytes(_wrapper_stream([STATE], b"\x00" * 8))
    assert joblib.load(path).tolist() == [0.0]  # the layout is what joblib.load reads
    scan = scan_file(path)
    assert (scan.ok, scan.arrays) == (True, 1)
    path.write_bytes(_wrapper_stream([STATE], b"\x00" * 7))  # one byte short
    assert "ends" in (scan_file(path).error or "")  # the STOP was read as array data


def test_a_dtype_whose_state_changes_is_refused(tmp_path: Path) -> None:
    error = scan_bytes(tmp_path, _wrapper_stream([STATE, b")b"], b"\x00" * 8))
    assert "set twice" in (error or "")


def test_deep_nesting_is_refused_not_crashed_on(tmp_path: Path) -> None:
    nested = b")" + b"\x85" * 200_000 + b"b"
    error = scan_bytes(tmp_path, _wrapper_stream([nested], b"\x00" * 8))
    assert "RecursionError" in (error or "")
