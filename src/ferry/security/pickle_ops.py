"""A symbolic unpickler: reads a pickle stream the way ``pickle._Unpickler`` and joblib's
``NumpyUnpickler`` do, opcode by opcode, but never imports or calls anything.

Every name the stream would import (``GLOBAL``, ``STACK_GLOBAL`` with its strings resolved from
the stack and memo, ``INST``) is recorded. Values are modelled just far enough to resolve those
strings and to size joblib's arrays: strings, numbers, tuples, lists and dicts are real Python
values; whatever a call would build is an opaque ``Made``. joblib writes each numpy array as a
``NumpyArrayWrapper`` object followed by the array's raw bytes (or, for object arrays, a nested
pickle) outside the pickle framing; after the wrapper's ``BUILD`` the bytes are skipped exactly
as joblib reads them, and scanning goes on after them. Anything the machine cannot follow raises
``PickleRejected``: a reader that is unsure must say no.
"""

from __future__ import annotations

import _compat_pickle
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

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


class _Mark:
    pass


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


Handler = Callable[["Machine"], None]
_DISPATCH: dict[int, Handler] = {}


def _op(code: bytes) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _DISPATCH[code[0]] = handler
        return handler

    return register


class Machine:
    """Runs one pickle (up to its STOP) over ``stream``, appending every import to ``found``.

    ``joblib`` follows joblib's array layout (as ``joblib.load`` reads); without it, a
    ``NumpyArrayWrapper`` is rejected, since a plain unpickler would run the bytes that joblib
    treats as array data.
    """

    def __init__(
        self, stream: Stream, found: list[GlobalRef], *, joblib: bool, depth: int = 0
    ) -> None:
        self.stream = stream
        self.found = found
        self.joblib = joblib
        self.depth = depth
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.offset = 0
        self.opname = ""
        self.arrays = 0
        self.dtypes: dict[int, tuple[object, Any]] = {}  # rebuilt numpy dtypes, see arrays.py

    def run(self) -> None:
        while True:
            self.offset = self.stream.position
            code = self.stream.read(1)
            if not code:
                raise PickleRejected("the pickle ends before its STOP opcode", self.offset)
            if code == b".":
                if not self.stack:
                    raise PickleRejected("STOP with an empty stack", self.offset)
                return
            handler = _DISPATCH.get(code[0])
            if handler is None:
                raise PickleRejected(f"unknown opcode {code!r}", self.offset)
            try:
                handler(self)
            except (
                IndexError,
                KeyError,
                TypeError,
                ValueError,
                struct.error,
                RecursionError,
            ) as exc:
                raise PickleRejected(
                    f"malformed pickle: {type(exc).__name__} in {self.opname}", self.offset
                ) from exc

    # --- helpers ----------------------------------------------------------------------------
    def fail(self, reason: str) -> PickleRejected:
        return PickleRejected(reason, self.offset)

    def name(self, opname: str) -> None:
        self.opname = opname

    def push(self, value: object) -> None:
        self.stack.append(value)

    def pop(self) -> object:
        return self.stack.pop()

    def pop_mark(self) -> list[object]:
        items = self.stack
        if not self.metastack:
            raise self.fail(f"{self.opname} without a MARK")
        self.stack = self.metastack.pop()
        return items

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack(fmt, self.stream.read_exact(size, self.opname))
        return int(value)

    def payload(self, size: int, *, text: bool) -> object:
        if size < 0:
            raise self.fail(f"{self.opname} with a negative length")
        if size > BIG:
            self.stream.skip(size, self.opname)
            return Blob(size)
        data = self.stream.read_exact(size, self.opname)
        return data.decode("utf-8", "surrogatepass") if text else data

    def text_line(self) -> bytes:
        return self.stream.readline()[:-1]

    def find_class(self, module: str, name: str, opname: str) -> Global:
        if self.proto < 3:  # the unpickler's fix_imports, for names written by Python 2
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        found = Global(module, name)
        self.found.append(GlobalRef(found, opname, self.offset))
        if found.key == WRAPPER and not self.joblib:
            raise self.fail(
                "a joblib NumpyArrayWrapper in a stream that is not read by joblib.load"
            )
        return found

    def call(self, func: object, args: object, *, via_new: bool) -> Made:
        """What REDUCE/NEWOBJ/OBJ/INST build; only an imported name may be called."""
        if not isinstance(func, Global):
            raise self.fail(f"{self.opname} calls something that is not an imported name")
        if not isinstance(args, list | tuple):
            raise self.fail(f"{self.opname} with arguments that are not a tuple")
        arguments = tuple(args)
        if func.key == RECONSTRUCTOR and len(arguments) == 3:
            cls, base, state = arguments
            if isinstance(cls, Global) and isinstance(base, Global):
                if cls.key == WRAPPER and (base.key != OBJECT or state is not None):
                    raise self.fail("a NumpyArrayWrapper built in an unusual way")
                return Made(cls, via_new=base.key == OBJECT and state is None)
        if func.key == WRAPPER and not (via_new and not arguments):
            # joblib pickles it as __new__ plus a BUILD of its __dict__; anything else (an
            # __init__ with arguments) is not written by joblib and is not followed here
            raise self.fail("a NumpyArrayWrapper built in an unusual way")
        return Made(func, arguments, via_new=via_new)

    def build(self) -> None:
        state = self.pop()
        target = self.stack[-1]
        if not isinstance(target, Made):
            return
        if target.factory.key == DTYPE:
            # numpy's __setstate__ changes a dtype in place: one already used to size an
            # array, or set twice, could make the same bytes mean two layouts
            if target.dtype_state is not None or target.used:
                raise self.fail("a numpy dtype whose state is set twice or after its use")
            target.dtype_state = state
            return
        if target.factory.key != WRAPPER:
            return
        if target.built:
            raise self.fail("a NumpyArrayWrapper built twice")
        target.built = True
        pieces = state if isinstance(state, tuple) and len(state) == 2 else (state, None)
        for piece in pieces:
            if piece is None or piece == {}:
                continue
            if not isinstance(piece, dict) or not all(isinstance(k, str) for k in piece):
                raise self.fail("a NumpyArrayWrapper whose state is not a dict of names")
            target.state.update(piece)
        if self.joblib:
            self.stack[-1] = self.read_array(target)

    def read_array(self, wrapper: Made) -> Made:
        """Skip the array joblib writes after the wrapper, as ``NumpyArrayWrapper.read`` reads
        it: a nested pickle for object arrays, else an alignment pad and the raw data."""
        from ferry.security.arrays import array_layout

        layout = array_layout(wrapper.state, self.dtypes)
        if isinstance(layout, str):
            raise self.fail(f"a joblib array that cannot be read: {layout}")
        self.arrays += 1
        if layout.nested:
            if self.depth >= MAX_NESTING:
                raise self.fail("joblib arrays nested too deeply")
            # joblib reads an object array with a fresh (plain) Unpickler on the raw file
            nested = Machine(_Shared(self.stream), self.found, joblib=False, depth=self.depth + 1)
            nested.run()
        else:
            if layout.aligned:
                pad = self.stream.raw_read(1)
                length = int.from_bytes(pad, "little")
                if length:
                    self.stream.raw_read(length)  # joblib ignores a short read here
            self.stream.raw_skip(layout.nbytes, "a joblib array's data")
        return Made(Global("numpy", "ndarray"))


class _Shared(Stream):
    """A fresh unframed reader over the same raw file, sharing its position count."""

    def __init__(self, outer: Stream) -> None:
        super().__init__(outer.raw)
        self.outer = outer

    def raw_read(self, n: int) -> bytes:
        data = self.outer.raw_read(n)
        self.position = self.outer.position
        return data

    def raw_readline(self) -> bytes:
        data = self.outer.raw_readline()
        self.position = self.outer.position
        return data


# --- opcodes, in pickletools' order -----------------------------------------------------------
def _const(code: bytes, opname: str, value: object) -> None:
    def handler(m: Machine) -> None:
        m.name(opname)
        m.push(value)

    _op(code)(handler)


_const(b"N", "NONE", None)
_const(b"\x88", "NEWTRUE", True)
_const(b"\x89", "NEWFALSE", False)
_const(b")", "EMPTY_TUPLE", ())


@_op(b"I")
def _int(m: Machine) -> None:
    m.name("INT")
    data = m.text_line()
    m.push(False if data == b"00" else True if data == b"01" else int(data, 0))


@_op(b"J")
def _binint(m: Machine) -> None:
    m.name("BININT")
    m.push(m.unpack("<i"))


@_op(b"K")
def _binint1(m: Machine) -> None:
    m.name("BININT1")
    m.push(m.unpack("<B"))


@_op(b"M")
def _binint2(m: Machine) -> None:
    m.name("BININT2")
    m.push(m.unpack("<H"))


@_op(b"L")
def _long(m: Machine) -> None:
    m.name("LONG")
    data = m.text_line()
    m.push(int(data[:-1] if data.endswith(b"L") else data, 0))


def _long_n(m: Machine, fmt: str) -> None:
    size = m.unpack(fmt)
    if size < 0:
        raise m.fail(f"{m.opname} with a negative length")
    if size > 64:
        raise m.fail(f"{m.opname}: an integer of {size} bytes")  # no model needs one
    m.push(int.from_bytes(m.stream.read_exact(size, m.opname), "little", signed=True))


@_op(b"\x8a")
def _long1(m: Machine) -> None:
    m.name("LONG1")
    _long_n(m, "<B")


@_op(b"\x8b")
def _long4(m: Machine) -> None:
    m.name("LONG4")
    _long_n(m, "<i")


@_op(b"S")
def _string(m: Machine) -> None:
    import codecs

    m.name("STRING")
    data = m.text_line()
    if len(data) < 2 or data[0] != data[-1] or data[:1] not in (b'"', b"'"):
        raise m.fail("STRING argument is not quoted")
    m.push(codecs.escape_decode(data[1:-1])[0].decode("ascii"))


def _binstring(m: Machine, fmt: str) -> None:
    value = m.payload(m.unpack(fmt), text=False)
    m.push(value.decode("ascii") if isinstance(value, bytes) else value)


@_op(b"T")
def _binstring4(m: Machine) -> None:
    m.name("BINSTRING")
    _binstring(m, "<i")


@_op(b"U")
def _short_binstring(m: Machine) -> None:
    m.name("SHORT_BINSTRING")
    _binstring(m, "<B")


def _bytes(code: bytes, opname: str, fmt: str, *, text: bool) -> None:
    def handler(m: Machine) -> None:
        m.name(opname)
        m.push(m.payload(m.unpack(fmt), text=text))

    _op(code)(handler)


_bytes(b"B", "BINBYTES", "<I", text=False)
_bytes(b"C", "SHORT_BINBYTES", "<B", text=False)
_bytes(b"\x8e", "BINBYTES8", "<Q", text=False)
_bytes(b"\x96", "BYTEARRAY8", "<Q", text=False)
_bytes(b"X", "BINUNICODE", "<I", text=True)
_bytes(b"\x8c", "SHORT_BINUNICODE", "<B", text=True)
_bytes(b"\x8d", "BINUNICODE8", "<Q", text=True)


@_op(b"V")
def _unicode(m: Machine) -> None:
    m.name("UNICODE")
    m.push(m.text_line().decode("raw-unicode-escape"))


@_op(b"F")
def _float(m: Machine) -> None:
    m.name("FLOAT")
    m.push(float(m.text_line()))


@_op(b"G")
def _binfloat(m: Machine) -> None:
    m.name("BINFLOAT")
    (value,) = struct.unpack(">d", m.stream.read_exact(8, "BINFLOAT"))
    m.push(value)


@_op(b"]")
def _empty_list(m: Machine) -> None:
    m.name("EMPTY_LIST")
    m.push([])


@_op(b"a")
def _append(m: Machine) -> None:
    m.name("APPEND")
    value = m.pop()
    target = m.stack[-1]
    if isinstance(target, list):
        target.append(value)


@_op(b"e")
def _appends(m: Machine) -> None:
    m.name("APPENDS")
    items = m.pop_mark()
    target = m.stack[-1]
    if isinstance(target, list):
        target.extend(items)


@_op(b"l")
def _list(m: Machine) -> None:
    m.name("LIST")
    m.push(m.pop_mark())


@_op(b"t")
def _tuple(m: Machine) -> None:
    m.name("TUPLE")
    m.push(tuple(m.pop_mark()))


def _tuple_n(code: bytes, opname: str, n: int) -> None:
    def handler(m: Machine) -> None:
        m.name(opname)
        if len(m.stack) < n:
            raise m.fail(f"{opname} with fewer than {n} items on the stack")
        items = tuple(m.stack[-n:])
        del m.stack[-n:]
        m.push(items)

    _op(code)(handler)


_tuple_n(b"\x85", "TUPLE1", 1)
_tuple_n(b"\x86", "TUPLE2", 2)
_tuple_n(b"\x87", "TUPLE3", 3)


@_op(b"}")
def _empty_dict(m: Machine) -> None:
    m.name("EMPTY_DICT")
    m.push({})


@_op(b"d")
def _dict(m: Machine) -> None:
    m.name("DICT")
    items = m.pop_mark()
    m.push({items[i]: items[i + 1] for i in range(0, len(items), 2)})


@_op(b"s")
def _setitem(m: Machine) -> None:
    m.name("SETITEM")
    value = m.pop()
    key = m.pop()
    target = m.stack[-1]
    if isinstance(target, dict):
        target[key] = value


@_op(b"u")
def _setitems(m: Machine) -> None:
    m.name("SETITEMS")
    items = m.pop_mark()
    target = m.stack[-1]
    if isinstance(target, dict):
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]


@_op(b"\x8f")
def _empty_set(m: Machine) -> None:
    m.name("EMPTY_SET")
    m.push(set())


@_op(b"\x90")
def _additems(m: Machine) -> None:
    m.name("ADDITEMS")
    items = m.pop_mark()
    target = m.stack[-1]
    if isinstance(target, set):
        target.update(items)


@_op(b"\x91")
def _frozenset(m: Machine) -> None:
    m.name("FROZENSET")
    m.push(frozenset(m.pop_mark()))


@_op(b"0")
def _pop(m: Machine) -> None:
    m.name("POP")
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


@_op(b"2")
def _dup(m: Machine) -> None:
    m.name("DUP")
    m.push(m.stack[-1])


@_op(b"(")
def _mark(m: Machine) -> None:
    m.name("MARK")
    m.metastack.append(m.stack)
    m.stack = []


@_op(b"1")
def _pop_mark(m: Machine) -> None:
    m.name("POP_MARK")
    m.pop_mark()


def _get(m: Machine, index: int) -> None:
    if index not in m.memo:
        raise m.fail(f"{m.opname} of memo slot {index}, which was never set")
    m.push(m.memo[index])


def _put(m: Machine, index: int) -> None:
    if index < 0:
        raise m.fail(f"{m.opname} with a negative index")
    m.memo[index] = m.stack[-1]


@_op(b"g")
def _get_text(m: Machine) -> None:
    m.name("GET")
    _get(m, int(m.text_line()))


@_op(b"h")
def _binget(m: Machine) -> None:
    m.name("BINGET")
    _get(m, m.unpack("<B"))


@_op(b"j")
def _long_binget(m: Machine) -> None:
    m.name("LONG_BINGET")
    _get(m, m.unpack("<I"))


@_op(b"p")
def _put_text(m: Machine) -> None:
    m.name("PUT")
    _put(m, int(m.text_line()))


@_op(b"q")
def _binput(m: Machine) -> None:
    m.name("BINPUT")
    _put(m, m.unpack("<B"))


@_op(b"r")
def _long_binput(m: Machine) -> None:
    m.name("LONG_BINPUT")
    _put(m, m.unpack("<I"))


@_op(b"\x94")
def _memoize(m: Machine) -> None:
    m.name("MEMOIZE")
    m.memo[len(m.memo)] = m.stack[-1]


def _ext(code: bytes, opname: str) -> None:
    def handler(m: Machine) -> None:
        m.name(opname)
        raise m.fail(f"{opname}: a name from the copyreg extension registry, which may be anything")

    _op(code)(handler)


_ext(b"\x82", "EXT1")
_ext(b"\x83", "EXT2")
_ext(b"\x84", "EXT4")


@_op(b"c")
def _global(m: Machine) -> None:
    m.name("GLOBAL")
    module = m.text_line().decode("utf-8")
    name = m.text_line().decode("utf-8")
    m.push(m.find_class(module, name, "GLOBAL"))


@_op(b"\x93")
def _stack_global(m: Machine) -> None:
    m.name("STACK_GLOBAL")
    name = m.pop()
    module = m.pop()
    if not isinstance(name, str) or not isinstance(module, str):
        raise m.fail("STACK_GLOBAL with a module or name that is not a string")
    m.push(m.find_class(module, name, "STACK_GLOBAL"))


@_op(b"R")
def _reduce(m: Machine) -> None:
    m.name("REDUCE")
    args = m.pop()
    m.stack[-1] = m.call(m.stack[-1], args, via_new=False)


@_op(b"b")
def _build(m: Machine) -> None:
    m.name("BUILD")
    m.build()


def _instantiate(m: Machine, cls: object, args: list[object]) -> None:
    # with no arguments the unpickler calls cls.__new__(cls), else cls(*args)
    m.push(m.call(cls, args, via_new=not args))


@_op(b"i")
def _inst(m: Machine) -> None:
    m.name("INST")
    module = m.text_line().decode("ascii")
    name = m.text_line().decode("ascii")
    cls = m.find_class(module, name, "INST")
    _instantiate(m, cls, m.pop_mark())


@_op(b"o")
def _obj(m: Machine) -> None:
    m.name("OBJ")
    args = m.pop_mark()
    if not args:
        raise m.fail("OBJ without a class")
    _instantiate(m, args[0], args[1:])


@_op(b"\x81")
def _newobj(m: Machine) -> None:
    m.name("NEWOBJ")
    args = m.pop()
    cls = m.pop()
    m.push(m.call(cls, args, via_new=True))


@_op(b"\x92")
def _newobj_ex(m: Machine) -> None:
    m.name("NEWOBJ_EX")
    kwargs = m.pop()
    args = m.pop()
    cls = m.pop()
    if not isinstance(kwargs, dict):
        raise m.fail("NEWOBJ_EX with keyword arguments that are not a dict")
    made = m.call(cls, args, via_new=not kwargs)
    if kwargs and made.factory.key == WRAPPER:
        raise m.fail("a NumpyArrayWrapper built in an unusual way")
    m.push(made)


def _refuse(code: bytes, opname: str, why: str) -> None:
    def handler(m: Machine) -> None:
        m.name(opname)
        raise m.fail(f"{opname}: {why}")

    _op(code)(handler)


_refuse(b"P", "PERSID", "persistent ids load objects from outside the file")
_refuse(b"Q", "BINPERSID", "persistent ids load objects from outside the file")
_refuse(b"\x97", "NEXT_BUFFER", "out-of-band buffers are not part of a model file")
_refuse(b"\x98", "READONLY_BUFFER", "out-of-band buffers are not part of a model file")


@_op(b"\x80")
def _proto(m: Machine) -> None:
    m.name("PROTO")
    proto = m.unpack("<B")
    if proto > HIGHEST_PROTOCOL:
        raise m.fail(f"pickle protocol {proto} is newer than this Python reads")
    m.proto = proto


@_op(b"\x95")
def _frame(m: Machine) -> None:
    m.name("FRAME")
    m.stream.load_frame(m.unpack("<Q"))
