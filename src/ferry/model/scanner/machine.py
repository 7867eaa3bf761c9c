"""A symbolic unpickler: reads a pickle stream the way ``pickle._Unpickler`` and joblib's
``NumpyUnpickler`` do, opcode by opcode, but never imports or calls anything.

Every name the stream would import (``GLOBAL``, ``STACK_GLOBAL`` with its strings resolved from
the stack and memo, ``INST``) is recorded. joblib writes each numpy array as a
``NumpyArrayWrapper`` object followed by the array's raw bytes (or, for object arrays, a nested
pickle) outside the pickle framing; after the wrapper's ``BUILD`` the bytes are skipped exactly
as joblib reads them, and scanning goes on after them. Anything the machine cannot follow raises
``PickleRejected``: a reader that is unsure must say no. The opcodes live in ``ops``.
"""

from __future__ import annotations

import _compat_pickle
import struct
from typing import Any

from ferry.model.scanner.ops import DISPATCH
from ferry.model.scanner.stream import (
    BIG,
    DTYPE,
    MAX_NESTING,
    OBJECT,
    RECONSTRUCTOR,
    WRAPPER,
    Blob,
    Global,
    GlobalRef,
    Made,
    PickleRejected,
    Stream,
    Use,
    UseRef,
)

_MAX_SIZE_DEPTH = 8  # how deep into nested arguments sizes are looked for
_SIZE_CEILING = 1 << 64


class Machine:
    """Runs one pickle (up to its STOP) over ``stream``, appending every import to ``found``.

    ``joblib`` follows joblib's array layout (as ``joblib.load`` reads); without it, a
    ``NumpyArrayWrapper`` is rejected, since a plain unpickler would run the bytes that joblib
    treats as array data.
    """

    def __init__(
        self,
        stream: Stream,
        found: list[GlobalRef],
        *,
        joblib: bool,
        depth: int = 0,
        uses: list[UseRef] | None = None,
    ) -> None:
        self.stream = stream
        self.found = found
        self.uses: list[UseRef] = [] if uses is None else uses
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
            op = DISPATCH.get(code[0])
            if op is None:
                raise PickleRejected(f"unknown opcode {code!r}", self.offset)
            self.opname, handler = op
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
                # object.__new__(cls), or base.__new__(cls, state) then base.__init__
                self.use(cls, "new", (state,))
                if base.key != OBJECT:
                    self.use(base, "call", (state,))
                return Made(cls, via_new=base.key == OBJECT and state is None)
        self.use(func, "new" if via_new else "call", arguments)
        if func.key == WRAPPER and not (via_new and not arguments):
            # joblib pickles it as __new__ plus a BUILD of its __dict__; anything else (an
            # __init__ with arguments) is not written by joblib and is not followed here
            raise self.fail("a NumpyArrayWrapper built in an unusual way")
        return Made(func, arguments, via_new=via_new)

    def use(self, name: Global, use: Use, arguments: tuple[object, ...]) -> None:
        self.uses.append(UseRef(name, use, _largest(arguments, 0), self.offset))

    def build(self) -> None:
        state = self.pop()
        target = self.stack[-1]
        if isinstance(target, Global):
            # the unpickler would set attributes on the imported class or function itself
            raise self.fail("BUILD on an imported name, which would change it for everyone")
        if not isinstance(target, Made):
            return
        self.use(target.factory, "build", ())
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
        from ferry.model.scanner.arrays import array_layout

        layout = array_layout(wrapper.state, self.dtypes)
        if isinstance(layout, str):
            raise self.fail(f"a joblib array that cannot be read: {layout}")
        self.arrays += 1
        if layout.nested:
            if self.depth >= MAX_NESTING:
                raise self.fail("joblib arrays nested too deeply")
            # joblib reads an object array with a fresh (plain) Unpickler on the raw file
            nested = Machine(
                _Shared(self.stream),
                self.found,
                joblib=False,
                depth=self.depth + 1,
                uses=self.uses,
            )
            nested.run()
        else:
            if layout.aligned:
                pad = self.stream.raw_read(1)
                length = int.from_bytes(pad, "little")
                if length:
                    self.stream.raw_read(length)  # joblib ignores a short read here
            self.stream.raw_skip(layout.nbytes, "a joblib array's data")
        return Made(Global("numpy", "ndarray"))


def _largest(value: object, depth: int, *, arguments: bool = True) -> int:
    """The biggest integer among a call's ``arguments``, or product of the integers of a tuple
    inside them (a shape), looking into what earlier calls were given too
    (``list(range(n))``); ``depth`` bounds the walk (lists may hold themselves)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return abs(value)
    if depth >= _MAX_SIZE_DEPTH:
        return 0
    items: tuple[object, ...] | list[object]
    if isinstance(value, Made):
        return _largest(value.args, depth + 1, arguments=True)
    if isinstance(value, tuple | list):
        items = value
    else:
        return 0
    product, largest = 1, 0
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            product = min(product * max(abs(item), 1), _SIZE_CEILING)  # no huge products
        largest = max(largest, _largest(item, depth + 1, arguments=False))
    shape = not arguments and isinstance(value, tuple) and product > 1
    return max(largest, product if shape else 0)


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
