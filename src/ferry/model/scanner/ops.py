"""The pickle opcodes of the scanner's symbolic unpickler, each as ``pickle._Unpickler`` runs
it, minus every import and call (``machine.Machine`` records and models those)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ferry.model.scanner.stream import HIGHEST_PROTOCOL, WRAPPER

if TYPE_CHECKING:
    from ferry.model.scanner.machine import Machine

Handler = Callable[["Machine"], None]
DISPATCH: dict[int, tuple[str, Handler]] = {}  # opcode -> its pickletools name, its handler


def _op(code: bytes, opname: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        DISPATCH[code[0]] = (opname, handler)
        return handler

    return register


# --- opcodes, in pickletools' order -----------------------------------------------------------
def _const(code: bytes, opname: str, value: object) -> None:
    def handler(m: Machine) -> None:
        m.push(value)

    _op(code, opname)(handler)


_const(b"N", "NONE", None)
_const(b"\x88", "NEWTRUE", True)
_const(b"\x89", "NEWFALSE", False)
_const(b")", "EMPTY_TUPLE", ())


@_op(b"I", "INT")
def _int(m: Machine) -> None:
    data = m.text_line()
    m.push(False if data == b"00" else True if data == b"01" else int(data, 0))


@_op(b"J", "BININT")
def _binint(m: Machine) -> None:
    m.push(m.unpack("<i"))


@_op(b"K", "BININT1")
def _binint1(m: Machine) -> None:
    m.push(m.unpack("<B"))


@_op(b"M", "BININT2")
def _binint2(m: Machine) -> None:
    m.push(m.unpack("<H"))


@_op(b"L", "LONG")
def _long(m: Machine) -> None:
    data = m.text_line()
    m.push(int(data[:-1] if data.endswith(b"L") else data, 0))


def _long_n(m: Machine, fmt: str) -> None:
    size = m.unpack(fmt)
    if size < 0:
        raise m.fail(f"{m.opname} with a negative length")
    if size > 64:
        raise m.fail(f"{m.opname}: an integer of {size} bytes")  # no model needs one
    m.push(int.from_bytes(m.stream.read_exact(size, m.opname), "little", signed=True))


@_op(b"\x8a", "LONG1")
def _long1(m: Machine) -> None:
    _long_n(m, "<B")


@_op(b"\x8b", "LONG4")
def _long4(m: Machine) -> None:
    _long_n(m, "<i")


@_op(b"S", "STRING")
def _string(m: Machine) -> None:
    import codecs

    data = m.text_line()
    if len(data) < 2 or data[0] != data[-1] or data[:1] not in (b'"', b"'"):
        raise m.fail("STRING argument is not quoted")
    m.push(codecs.escape_decode(data[1:-1])[0].decode("ascii"))


def _binstring(m: Machine, fmt: str) -> None:
    value = m.payload(m.unpack(fmt), text=False)
    m.push(value.decode("ascii") if isinstance(value, bytes) else value)


@_op(b"T", "BINSTRING")
def _binstring4(m: Machine) -> None:
    _binstring(m, "<i")


@_op(b"U", "SHORT_BINSTRING")
def _short_binstring(m: Machine) -> None:
    _binstring(m, "<B")


def _bytes(code: bytes, opname: str, fmt: str, *, text: bool) -> None:
    def handler(m: Machine) -> None:
        m.push(m.payload(m.unpack(fmt), text=text))

    _op(code, opname)(handler)


_bytes(b"B", "BINBYTES", "<I", text=False)
_bytes(b"C", "SHORT_BINBYTES", "<B", text=False)
_bytes(b"\x8e", "BINBYTES8", "<Q", text=False)
_bytes(b"\x96", "BYTEARRAY8", "<Q", text=False)
_bytes(b"X", "BINUNICODE", "<I", text=True)
_bytes(b"\x8c", "SHORT_BINUNICODE", "<B", text=True)
_bytes(b"\x8d", "BINUNICODE8", "<Q", text=True)


@_op(b"V", "UNICODE")
def _unicode(m: Machine) -> None:
    m.push(m.text_line().decode("raw-unicode-escape"))


@_op(b"F", "FLOAT")
def _float(m: Machine) -> None:
    m.push(float(m.text_line()))


@_op(b"G", "BINFLOAT")
def _binfloat(m: Machine) -> None:
    (value,) = struct.unpack(">d", m.stream.read_exact(8, "BINFLOAT"))
    m.push(value)


@_op(b"]", "EMPTY_LIST")
def _empty_list(m: Machine) -> None:
    m.push([])


@_op(b"a", "APPEND")
def _append(m: Machine) -> None:
    value = m.pop()
    target = m.stack[-1]
    if isinstance(target, list):
        target.append(value)


@_op(b"e", "APPENDS")
def _appends(m: Machine) -> None:
    items = m.pop_mark()
    target = m.stack[-1]
    if isinstance(target, list):
        target.extend(items)


@_op(b"l", "LIST")
def _list(m: Machine) -> None:
    m.push(m.pop_mark())


@_op(b"t", "TUPLE")
def _tuple(m: Machine) -> None:
    m.push(tuple(m.pop_mark()))


def _tuple_n(code: bytes, opname: str, n: int) -> None:
    def handler(m: Machine) -> None:
        if len(m.stack) < n:
            raise m.fail(f"{opname} with fewer than {n} items on the stack")
        items = tuple(m.stack[-n:])
        del m.stack[-n:]
        m.push(items)

    _op(code, opname)(handler)


_tuple_n(b"\x85", "TUPLE1", 1)
_tuple_n(b"\x86", "TUPLE2", 2)
_tuple_n(b"\x87", "TUPLE3", 3)


@_op(b"}", "EMPTY_DICT")
def _empty_dict(m: Machine) -> None:
    m.push({})


@_op(b"d", "DICT")
def _dict(m: Machine) -> None:
    items = m.pop_mark()
    m.push({items[i]: items[i + 1] for i in range(0, len(items), 2)})


@_op(b"s", "SETITEM")
def _setitem(m: Machine) -> None:
    value = m.pop()
    key = m.pop()
    target = m.stack[-1]
    if isinstance(target, dict):
        target[key] = value


@_op(b"u", "SETITEMS")
def _setitems(m: Machine) -> None:
    items = m.pop_mark()
    target = m.stack[-1]
    if isinstance(target, dict):
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]


@_op(b"\x8f", "EMPTY_SET")
def _empty_set(m: Machine) -> None:
    m.push(set())


@_op(b"\x90", "ADDITEMS")
def _additems(m: Machine) -> None:
    items = m.pop_mark()
    target = m.stack[-1]
    if isinstance(target, set):
        target.update(items)


@_op(b"\x91", "FROZENSET")
def _frozenset(m: Machine) -> None:
    m.push(frozenset(m.pop_mark()))


@_op(b"0", "POP")
def _pop(m: Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


@_op(b"2", "DUP")
def _dup(m: Machine) -> None:
    m.push(m.stack[-1])


@_op(b"(", "MARK")
def _mark(m: Machine) -> None:
    m.metastack.append(m.stack)
    m.stack = []


@_op(b"1", "POP_MARK")
def _pop_mark(m: Machine) -> None:
    m.pop_mark()


def _get(m: Machine, index: int) -> None:
    if index not in m.memo:
        raise m.fail(f"{m.opname} of memo slot {index}, which was never set")
    m.push(m.memo[index])


def _put(m: Machine, index: int) -> None:
    if index < 0:
        raise m.fail(f"{m.opname} with a negative index")
    m.memo[index] = m.stack[-1]


def _memo(code: bytes, opname: str, action: Callable[[Machine, int], None], fmt: str) -> None:
    def handler(m: Machine) -> None:
        action(m, int(m.text_line()) if fmt == "text" else m.unpack(fmt))

    _op(code, opname)(handler)


_memo(b"g", "GET", _get, "text")
_memo(b"h", "BINGET", _get, "<B")
_memo(b"j", "LONG_BINGET", _get, "<I")
_memo(b"p", "PUT", _put, "text")
_memo(b"q", "BINPUT", _put, "<B")
_memo(b"r", "LONG_BINPUT", _put, "<I")


@_op(b"\x94", "MEMOIZE")
def _memoize(m: Machine) -> None:
    m.memo[len(m.memo)] = m.stack[-1]


@_op(b"c", "GLOBAL")
def _global(m: Machine) -> None:
    module = m.text_line().decode("utf-8")
    name = m.text_line().decode("utf-8")
    m.push(m.find_class(module, name, "GLOBAL"))


@_op(b"\x93", "STACK_GLOBAL")
def _stack_global(m: Machine) -> None:
    name = m.pop()
    module = m.pop()
    if not isinstance(name, str) or not isinstance(module, str):
        raise m.fail("STACK_GLOBAL with a module or name that is not a string")
    m.push(m.find_class(module, name, "STACK_GLOBAL"))


@_op(b"R", "REDUCE")
def _reduce(m: Machine) -> None:
    args = m.pop()
    m.stack[-1] = m.call(m.stack[-1], args, via_new=False)


@_op(b"b", "BUILD")
def _build(m: Machine) -> None:
    m.build()


def _instantiate(m: Machine, cls: object, args: list[object]) -> None:
    # with no arguments the unpickler calls cls.__new__(cls), else cls(*args)
    m.push(m.call(cls, args, via_new=not args))


@_op(b"i", "INST")
def _inst(m: Machine) -> None:
    module = m.text_line().decode("ascii")
    name = m.text_line().decode("ascii")
    cls = m.find_class(module, name, "INST")
    _instantiate(m, cls, m.pop_mark())


@_op(b"o", "OBJ")
def _obj(m: Machine) -> None:
    args = m.pop_mark()
    if not args:
        raise m.fail("OBJ without a class")
    _instantiate(m, args[0], args[1:])


@_op(b"\x81", "NEWOBJ")
def _newobj(m: Machine) -> None:
    args = m.pop()
    cls = m.pop()
    m.push(m.call(cls, args, via_new=True))


@_op(b"\x92", "NEWOBJ_EX")
def _newobj_ex(m: Machine) -> None:
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
        raise m.fail(f"{opname}: {why}")

    _op(code, opname)(handler)


_EXTENSION = "a name from the copyreg extension registry, which may be anything"
_refuse(b"P", "PERSID", "persistent ids load objects from outside the file")
_refuse(b"Q", "BINPERSID", "persistent ids load objects from outside the file")
_refuse(b"\x97", "NEXT_BUFFER", "out-of-band buffers are not part of a model file")
_refuse(b"\x98", "READONLY_BUFFER", "out-of-band buffers are not part of a model file")
_refuse(b"\x82", "EXT1", _EXTENSION)
_refuse(b"\x83", "EXT2", _EXTENSION)
_refuse(b"\x84", "EXT4", _EXTENSION)


@_op(b"\x80", "PROTO")
def _proto(m: Machine) -> None:
    proto = m.unpack("<B")
    if proto > HIGHEST_PROTOCOL:
        raise m.fail(f"pickle protocol {proto} is newer than this Python reads")
    m.proto = proto


@_op(b"\x95", "FRAME")
def _frame(m: Machine) -> None:
    m.stream.load_frame(m.unpack("<Q"))
