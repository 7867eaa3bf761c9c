"""Training-data fingerprints for lineage: the file's sha256 and its row count, in one pass."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

from ferry.errors import InvalidRequest, MissingDependency

_CHUNK = 1024 * 1024
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson")


class _HashingReader(io.RawIOBase):
    """Reads a binary file and hashes every byte on the way through."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer)
        if count:
            self.digest.update(buffer[:count])
        return count or 0


def fingerprint_data(path: Path) -> tuple[str, int]:
    """``(sha256 of the file's bytes, number of data rows)`` for CSV/TSV (header excluded),
    JSON lines, Parquet, and their ``.gz`` forms for the text formats."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"data file {path} does not exist", field="data", path=str(path))
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    kind = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if kind == ".parquet" and not compressed:
        return _hash(path), _parquet_rows(path)
    if kind not in TEXT_SUFFIXES:
        raise InvalidRequest(
            f"cannot count the rows of {path.name}: use .csv, .tsv, .jsonl or .parquet "
            "(optionally .gz for the text formats)",
            field="data",
            path=str(path),
        )
    with path.open("rb") as handle:
        reader = _HashingReader(handle)
        buffered = io.BufferedReader(reader, _CHUNK)
        if compressed:
            with gzip.GzipFile(fileobj=buffered) as unzipped:
                rows = _count_rows(_text(unzipped), kind)
        else:
            rows = _count_rows(_text(buffered), kind)
        while buffered.read(_CHUNK):  # hash any trailing bytes the parsers left unread
            pass
        return reader.digest.hexdigest(), rows


def _text(stream: io.BufferedIOBase) -> Iterator[str]:
    wrapper = io.TextIOWrapper(
        cast(IO[bytes], stream), encoding="utf-8", errors="replace", newline=""
    )
    try:
        yield from wrapper
    finally:
        wrapper.detach()  # leave the byte stream open for the caller


def _count_rows(lines: Iterator[str], kind: str) -> int:
    if kind in (".jsonl", ".ndjson"):
        return sum(1 for line in lines if line.strip())
    delimiter = "\t" if kind == ".tsv" else ","
    return max(0, sum(1 for row in csv.reader(lines, delimiter=delimiter) if row) - 1)


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _parquet_rows(path: Path) -> int:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency(
            "counting Parquet rows needs pyarrow: pip install pyarrow", library="pyarrow"
        ) from exc
    rows: int = pq.ParquetFile(path).metadata.num_rows
    return rows
