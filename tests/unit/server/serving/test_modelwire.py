"""The pipe protocol to a code model's process: arrays round-trip; nothing else is read."""

from __future__ import annotations

import os
import pickle
import time

import numpy as np
import pytest

from ferry.model.signature import Batch
from ferry.server.serving.modelwire import (
    Frame,
    WireError,
    arrays_frame,
    batch_frame,
    decode_array,
    encode_array,
    read_batch,
    read_frame,
    write_frame,
)

ARRAYS = [
    np.arange(6, dtype=np.int64),
    np.linspace(0, 1, 6).reshape(3, 2),
    np.array([True, False]),
    np.array(["setosa", "versicolor"]),
    np.array(["a", 1, None], dtype=object),
    np.array(["2024-01-01"], dtype="datetime64[D]"),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: str(a.dtype))
def test_arrays_round_trip(array: np.ndarray) -> None:
    meta, blob = encode_array(array)
    back = decode_array(meta, blob)
    assert back.dtype == array.dtype
    assert back.tolist() == array.tolist()
    back[...] = back  # writable, as an in-process array is


@pytest.mark.parametrize(
    ("meta", "blob"),
    [
        ({"enc": "raw", "dtype": "|O", "shape": [1]}, b"\0" * 8),
        ({"enc": "raw", "dtype": "<f8", "shape": [2]}, b"\0" * 8),
        ({"enc": "raw", "dtype": "|V8", "shape": [1]}, b"\0" * 8),
        ({"enc": "pickle", "shape": [1]}, pickle.dumps(np.zeros(1))),
        ({"enc": "json", "shape": "1"}, b"[1]"),
        ("raw", b""),
    ],
)
def test_anything_else_is_refused(meta: object, blob: bytes) -> None:
    with pytest.raises(WireError):
        decode_array(meta, blob)


def test_frames_over_a_pipe() -> None:
    read_end, write_end = os.pipe()
    try:
        batch = Batch.of_matrix(np.arange(8, dtype=float).reshape(2, 4), ["a", "b", "c", "d"])
        write_frame(write_end, batch_frame("predict", batch))
        got = read_batch(read_frame(read_end, time.monotonic() + 5))
        assert got.n_rows == 2
        assert got.to_matrix().tolist() == batch.to_matrix().tolist()
        write_frame(write_end, arrays_frame([np.array([1, 2])], ok=True))
        reply = read_frame(read_end, time.monotonic() + 5)
        assert reply.header["ok"] is True
        with pytest.raises(TimeoutError):
            read_frame(read_end, time.monotonic() + 0.05)
        os.write(write_end, (2**30).to_bytes(4, "big"))
        with pytest.raises(WireError, match="header"):
            read_frame(read_end, time.monotonic() + 1)
        write_frame(write_end, Frame({"ok": True}, [b"x"]))
        os.close(write_end)
        assert read_frame(read_end).blobs == [b"x"]
        with pytest.raises(EOFError):
            read_frame(read_end)
    finally:
        os.close(read_end)
