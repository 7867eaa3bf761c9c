"""The pipe protocol between a worker and a code model's sandboxed process.

A frame is a 4-byte big-endian header length, a JSON header, then the blobs the header lists
(``"blobs": [size, ...]``), each raw bytes. Arrays travel as their raw bytes with dtype string
and shape in the header (numbers, booleans, fixed-width strings, datetimes; a dtype of any
other kind is refused, the size must match), or as a JSON list for object arrays (strings of
any length, mixed labels). Nothing either side receives is unpickled: the model process is
hostile, and what it sends is parsed as JSON and plain buffers only, with sizes bounded before
anything is read. (``np.load`` of ``.npy`` bytes did the same at 165 us per array, against 5.)
"""

from __future__ import annotations

import math
import os
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ferry.model.signature import Batch

MAX_HEADER_BYTES = 1024 * 1024
MAX_FRAME_BYTES = 1024**3  # a reply holding more than 1 GiB of predictions is refused
_RAW_KINDS = frozenset("biufcUSMm")


class WireError(Exception):
    """The other side sent something that is not a frame, too much, or nothing in time."""


@dataclass(frozen=True, slots=True)
class Frame:
    header: dict[str, Any]
    blobs: list[bytes]


def encode_array(array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """(description, bytes) of one array."""
    if array.dtype.kind in _RAW_KINDS and not array.dtype.hasobject:
        meta = {"enc": "raw", "dtype": array.dtype.str, "shape": list(array.shape)}
        return meta, np.ascontiguousarray(array).tobytes()
    values = array.tolist()
    return {"enc": "json", "shape": list(array.shape)}, orjson.dumps(
        values, option=orjson.OPT_SERIALIZE_NUMPY
    )


def decode_array(meta: Any, blob: bytes) -> np.ndarray:
    """The array ``encode_array`` described; ``WireError`` for anything else."""
    if not isinstance(meta, dict):
        raise WireError("an array description is not an object")
    try:
        shape = meta.get("shape")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError("an array has no shape")
        if meta.get("enc") == "raw":
            dtype = np.dtype(str(meta.get("dtype")))
            if dtype.kind not in _RAW_KINDS or dtype.hasobject or dtype.fields is not None:
                raise WireError(f"an array of dtype {dtype} is not accepted")
            if len(blob) != math.prod(shape) * dtype.itemsize:
                raise WireError("an array's bytes do not match its shape")
            # a writable copy: a model may change its input in place, as it could in-process
            return np.frombuffer(bytearray(blob), dtype=dtype).reshape(shape)
        if meta.get("enc") == "json":
            values = orjson.loads(blob)
            if len(shape) == 1:
                array = np.empty(shape[0], dtype=object)
                array[:] = values
                return array
            return np.array(values, dtype=object).reshape(shape)
    except (ValueError, TypeError, orjson.JSONDecodeError, EOFError) as exc:
        raise WireError(f"an array could not be read: {type(exc).__name__}") from exc
    raise WireError("an array has an unknown encoding")


def batch_frame(op: str, batch: Batch) -> Frame:
    """A predict request: the batch's matrix as one array when it has one, else its columns."""
    names = list(batch.columns)
    arrays = [batch.matrix] if batch.matrix is not None else [batch.columns[n] for n in names]
    metas, blobs = zip(*(encode_array(a) for a in arrays), strict=True)
    header = {
        "op": op,
        "names": names,
        "n_rows": batch.n_rows,
        "layout": "matrix" if batch.matrix is not None else "columns",
        "arrays": list(metas),
    }
    return Frame(header, list(blobs))


def read_batch(frame: Frame) -> Batch:
    """The batch a request frame carries (in the model process)."""
    header = frame.header
    arrays = [decode_array(m, b) for m, b in zip(header["arrays"], frame.blobs, strict=True)]
    names = [str(n) for n in header["names"]]
    if header["layout"] == "matrix":
        return Batch.of_matrix(arrays[0], names)
    return Batch(dict(zip(names, arrays, strict=True)), int(header["n_rows"]))


def arrays_frame(arrays: Sequence[np.ndarray], **header: Any) -> Frame:
    encoded = [encode_array(a) for a in arrays]
    return Frame({**header, "arrays": [m for m, _ in encoded]}, [b for _, b in encoded])


def write_frame(fd: int, frame: Frame) -> None:
    header = orjson.dumps({**frame.header, "blobs": [len(b) for b in frame.blobs]})
    # one write: a frame in several writes wakes the reader once per part (a context switch
    # each on a busy machine); the copy costs less than that for frames under a few MB
    view = memoryview(b"".join([len(header).to_bytes(4, "big"), header, *frame.blobs]))
    while view:
        view = view[os.write(fd, view) :]


def read_frame(fd: int, deadline: float | None = None) -> Frame:
    """One frame from ``fd``, by ``deadline`` (a ``time.monotonic()`` value; None: no limit)."""
    size = int.from_bytes(_read_exactly(fd, 4, deadline), "big")
    if size > MAX_HEADER_BYTES:
        raise WireError(f"a frame header of {size} bytes is over the limit")
    try:
        header = orjson.loads(_read_exactly(fd, size, deadline))
    except orjson.JSONDecodeError as exc:
        raise WireError("a frame header is not JSON") from exc
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise WireError("a frame header lists no blob sizes")
    if sum(sizes) > MAX_FRAME_BYTES:
        raise WireError(f"a frame of {sum(sizes)} bytes is over the limit")
    return Frame(header, [_read_exactly(fd, n, deadline) for n in sizes])


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
