"""Training-data fingerprints: sha256 of the bytes and the row count."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from ferry.errors import InvalidRequest, MissingDependency
from ferry.registry import fingerprint_data


def test_csv_hash_and_rows(tmp_path: Path, iris_data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, _ = iris_data
    path = tmp_path / "train.csv"
    X.to_csv(path, index=False)
    digest, rows = fingerprint_data(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rows == len(X)


def test_quoted_newlines_count_as_one_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["one\nline", "two", 'three "quoted"\n\n'], "n": [1, 2, 3]})
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    assert fingerprint_data(path)[1] == 3


def test_gzip_csv_and_tsv_and_jsonl(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(57), "b": ["x"] * 57})
    csv_gz = tmp_path / "d.csv.gz"
    frame.to_csv(csv_gz, index=False, compression="gzip")
    digest, rows = fingerprint_data(csv_gz)
    assert (digest, rows) == (hashlib.sha256(csv_gz.read_bytes()).hexdigest(), 57)
    tsv = tmp_path / "d.tsv"
    frame.to_csv(tsv, index=False, sep="\t")
    assert fingerprint_data(tsv)[1] == 57
    jsonl = tmp_path / "d.jsonl"
    frame.to_json(jsonl, orient="records", lines=True)
    assert fingerprint_data(jsonl)[1] == 57
    with gzip.open(tmp_path / "empty.csv.gz", "wt") as out:
        out.write("a,b\n")
    assert fingerprint_data(tmp_path / "empty.csv.gz")[1] == 0


def test_large_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("x,y\n")
        for i in range(200_000):
            out.write(f"{i},{i * 2}\n")
    digest, rows = fingerprint_data(path)
    assert rows == 200_000
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_needs_pyarrow_or_counts(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(MissingDependency, match="pyarrow"):
            fingerprint_data(path)
    else:
        pd.DataFrame({"a": range(11)}).to_parquet(path)
        assert fingerprint_data(path)[1] == 11


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        fingerprint_data(tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_bytes(b"x")
    with pytest.raises(InvalidRequest, match=r"\.csv"):
        fingerprint_data(tmp_path / "d.xlsx")
