"""The values and the byte stream of the scanner's symbolic unpickler (see ``machine``).

Values are modelled just far enough to resolve imported names and to size joblib's arrays:
strings, numbers, tuples, lists and dicts are real Python values; whatever a call would build is
an opaque ``Made``; imported names are ``Global``. ``Stream`` reads the bytes as
``pickle._Unframer`` does, frame-aware for opcodes and raw for what joblib reads between them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
RECONSTRUCTOR = ("copyreg", "_reconstructor")
OBJECT = ("builtins", "object")
DTYPE = ("numpy", "dtype")
HIGHEST_PROTOCOL = 5
MAX_FRAME = 1 << 24  # picklers write ~64 KiB frames (big payloads go outside them)
BIG = 1 << 16  # string/bytes payloads longer than this are skipped, not kept
CHUNK = 1 << 20
MAX_LINE = 1 << 20  # GLOBAL/INT text arguments are short; a longer line is refused
MAX_NESTING = 4
Use = Literal["call", "new", "build"]


class PickleRejected(Exception):
    """The stream cannot be shown to be harmless: malformed, truncated, or using a feature the
    scanner does not follow."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(reason if offset is None else f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Global:
    """An imported name, after Python 2 names are mapped as the unpickler maps them."""

    module: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.module, self.name)

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, slots=True)
class GlobalRef:
    global_: Global
    opcode: str
    offset: int


@dataclass(frozen=True, slots=True)
class UseRef:
    """What the stream does with an imported name: ``call`` it (REDUCE, INST, OBJ), ``new``
    it (``cls.__new__``: NEWOBJ, ``copyreg._reconstructor``) or ``build`` an instance of it
    (BUILD runs ``__setstate__``); ``largest`` is the biggest integer (or product of a tuple's
    integers) among the arguments, a size if the call allocates."""

    global_: Global
    use: Use
    largest: int
    offset: int


@dataclass(eq=False, slots=True)
class Made:
    """What calling ``factory`` (a class or function) would have produced."""

    factory: Global
    args: tuple[object, ...] = ()
    via_new: bool = False  # cls.__new__(cls) with no __init__ (NEWOBJ, _reconstructor)
    state: dict[str, object] = field(default_factory=dict)
    dtype_state: object = None
    built: bool = False
    used: bool = False  # a numpy.dtype already turned into a real one to size an array


@dataclass(eq=False, slots=True)
class Blob:
    """A long string or bytes payload, skipped rather than held in memory."""

    size: int


class Stream:
    """The bytes under the unpickler: frame-aware reads for opcodes (as ``pickle._Unframer``),
    raw reads for what joblib reads straight from the file between opcodes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.position = 0  # bytes consumed from ``raw``
        self.frame: io.BytesIO | None = None

    def raw_read(self, n: int) -> bytes:
        data = self.raw.read(n)
        self.position += len(data)
        return data

    def raw_readline(self) -> bytes:
        data = self.raw.readline(MAX_LINE)
        self.position += len(data)
        return data

    def raw_skip(self, n: int, what: str) -> None:
        """Consume exactly ``n`` bytes, or reject: the real reader fails on a short read."""
        while n > 0:
            data = self.raw_read(min(n, CHUNK))
            if not data:
                raise PickleRejected(f"the file ends inside {what}", self.position)
            n -= len(data)

    def read(self, n: int) -> bytes:
        if self.frame is not None:
            data = self.frame.read(n)
            if not data and n != 0:
                self.frame = None
                return self.raw_read(n)
            if len(data) < n:
                raise PickleRejected("a frame ends inside an opcode", self.position)
            return data
        return self.raw_read(n)

    def read_exact(self, n: int, what: str) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise PickleRejected(f"the file ends inside {what}", self.position)
        return data

    def skip(self, n: int, what: str) -> None:
        if self.frame is not None:
            self.read_exact(n, what)  # a frame is at most MAX_FRAME bytes, already in memory
        else:
            self.raw_skip(n, what)

    def readline(self) -> bytes:
        if self.frame is not None:
            data = self.frame.readline()
            if not data:
                self.frame = None
                return self._line()
            if not data.endswith(b"\n"):
                raise PickleRejected("a frame ends inside an opcode", self.position)
            return data
        return self._line()

    def _line(self) -> bytes:
        data = self.raw_readline()
        if not data.endswith(b"\n"):
            raise PickleRejected("the file ends inside an opcode's text argument", self.position)
        return data

    def load_frame(self, size: int) -> None:
        if self.frame is not None and self.frame.read() != b"":
            raise PickleRejected("a new frame begins before the current one ends", self.position)
        if size > MAX_FRAME:
            raise PickleRejected(f"a frame of {size} bytes is larger than any pickler writes")
        self.frame = io.BytesIO(self.raw_read(size))
