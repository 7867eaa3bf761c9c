"""Archives unpacked within limits: what is written counts, not what headers claim (issue 13)."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import pytest

from ferry.errors import BundleError, PayloadTooLarge
from ferry.registry import UnpackLimits, unpack_archive
from tests.archive_bombs import MIB, entries_bomb, sparse_bomb, zeros_bomb

SMALL = UnpackLimits(
    max_bytes=8 * MIB, max_file_bytes=4 * MIB, max_entries=100, max_seconds=5.0, ratio_floor=8 * MIB
)


def _tar(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """``None`` data makes a folder entry."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _left(tmp_path: Path, archive: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p != archive)


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        (sparse_bomb, "'model/weights.bin' unpacks to more than 4194304 bytes"),
        (zeros_bomb, "'model/zeros.bin' unpacks to more than 4194304 bytes"),
        (entries_bomb, "more than 100 entries"),
    ],
)
def test_bombs_stop_at_their_limit_and_leave_nothing(
    tmp_path: Path, build: object, limit: str
) -> None:
    assert callable(build)
    archive = build(tmp_path / "bomb.tar.gz")
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match=limit) as caught:
        unpack_archive(archive, tmp_path / "out", limits=SMALL)
    assert time.monotonic() - started < 2.0
    assert caught.value.details["field"] == "bundle"
    assert _left(tmp_path, archive) == []


def test_the_total_counts_written_bytes_across_files(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", [(f"model/{i}.bin", b"\0" * (3 * MIB)) for i in range(3)])
    with pytest.raises(PayloadTooLarge, match="unpacks to more than 8388608 bytes"):
        unpack_archive(archive, tmp_path / "out", limits=SMALL)
    assert _left(tmp_path, archive) == []


def test_the_ratio_bounds_a_small_archive_below_the_total(tmp_path: Path) -> None:
    archive = zeros_bomb(tmp_path / "z.tar.gz", size=64 * MIB)  # about 66 KB
    limits = UnpackLimits(max_ratio=100.0, ratio_floor=MIB)
    with pytest.raises(PayloadTooLarge, match="100 times the"):
        unpack_archive(archive, tmp_path / "out", limits=limits)


def test_wall_time_is_bounded(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", [("model/a.bin", b"x" * 10)])
    with pytest.raises(PayloadTooLarge, match="took longer than"):
        unpack_archive(archive, tmp_path / "out", limits=UnpackLimits(max_seconds=1e-9))
    assert _left(tmp_path, archive) == []


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info = tarfile.TarInfo("model/a.bin")
    info.pax_headers = {"comment": "x" * (20 * MIB)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    archive = tmp_path / "pax.tar.gz"
    archive.write_bytes(gzip.compress(buffer.getvalue(), 1))
    with pytest.raises(PayloadTooLarge, match="headers are larger"):
        unpack_archive(archive, tmp_path / "out", limits=SMALL)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("ferry.yaml", b"a"), ("./ferry.yaml", b"b")], "'ferry.yaml' comes twice"),
        ([("model", b"a"), ("model/x.bin", b"b")], "'model/x.bin' is inside 'model'"),
        ([("model", b"a"), ("model", None)], "'model' comes twice"),
        ([("model/x", b"a"), ("model", b"b")], "'model' comes twice"),
        ([("model", None), ("model", b"b")], "'model' comes twice"),
    ],
)
def test_clashing_names_are_the_callers_error(
    tmp_path: Path, members: list[tuple[str, bytes | None]], message: str
) -> None:
    archive = _tar(tmp_path / "a.tar.gz", members)
    with pytest.raises(BundleError, match=message) as caught:
        unpack_archive(archive, tmp_path / "out", limits=SMALL, field="model")
    assert str(tmp_path) not in caught.value.message
    assert caught.value.details["field"] == "model"
    assert _left(tmp_path, archive) == []


def test_a_repeated_folder_entry_is_fine(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "a.tar.gz", [("model", None), ("model/", None), ("model/a.bin", b"ok")]
    )
    out = unpack_archive(archive, tmp_path / "out", limits=SMALL)
    assert (out / "model" / "a.bin").read_bytes() == b"ok"


def test_corrupt_streams_are_bad_archives(tmp_path: Path) -> None:
    good = _tar(tmp_path / "a.tar.gz", [("model/a.bin", b"x" * 100_000)]).read_bytes()
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(BundleError, match="not a readable tar archive"):
        unpack_archive(truncated, tmp_path / "out", limits=SMALL)
    assert _left(tmp_path, tmp_path / "a.tar.gz") == ["t.tar.gz"]


def test_the_default_limits_stop_a_tiny_sparse_archive_at_the_ratio_floor(tmp_path: Path) -> None:
    """With no setting changed, the 230-byte, 6 GiB sparse archive writes at most 64 MiB."""
    archive = sparse_bomb(tmp_path / "bomb.tar.gz")
    defaults = UnpackLimits()
    assert defaults.total_for(archive.stat().st_size) == 64 * MIB
    with pytest.raises(PayloadTooLarge, match="unpacks to more than 67108864 bytes"):
        unpack_archive(archive, tmp_path / "out", limits=defaults)
    assert _left(tmp_path, archive) == []
