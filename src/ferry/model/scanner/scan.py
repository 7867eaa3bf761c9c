"""Scan model files for pickles that would run code when loaded, before anything loads them.

A pickle can import and call any name, so it is judged by the names it imports: every opcode is
walked (``machine``), joblib's inline array data skipped as ``joblib.load`` reads it,
compressed joblib files decompressed as a stream (with a size limit), concatenated pickles all
read. Each imported name is checked against ``allowlist``; a file with names outside it, or one
the scanner cannot parse, is unsafe. ``enforce`` turns an unsafe report into ``UnsafeModel``
unless the caller vouches for the file (``trust``), in which case the report says what was
trusted.

Which files are scanned (``model_pickles``): the file the scikit-learn flavor loads with
``joblib.load``, and in a bundle or MLflow folder every file with a pickle suffix or a pickle
header. A name is judged by what it resolves to, and what unpickling runs (``__setstate__``,
sizes) by ``resolve``. ``scan_model`` also classes the model (``ferry.model.kinds``): custom
Python models (``file.py:Class``) and MLflow ``python_function`` folders are code, and
``enforce`` refuses them like an unsafe pickle unless trusted.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ferry.errors import UnsafeModel
from ferry.model.flavors import PICKLE_SUFFIXES, PickleFiles, PickleLoader, get_flavor
from ferry.model.kinds import DATA, ModelKind, classify
from ferry.model.scanner.machine import Machine
from ferry.model.scanner.resolve import Resolver, size_limit
from ferry.model.scanner.stream import GlobalRef, PickleRejected, Stream, UseRef

MAX_DECOMPRESSED_BYTES = 16 * 1024**3
_READ_CHUNK = 1 << 20
# joblib's compressors, by the magic bytes joblib.load looks for (in its order)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"ZF", "joblib<0.10"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
Loader = PickleLoader


@dataclass(frozen=True, slots=True)
class FileScan:
    """One file: every name its pickles import, those outside the allowlist, or why it could
    not be read."""

    path: str
    loader: Loader
    globals: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # "name: why", for the unsafe names refused by more than name
    error: str | None = None
    compression: str | None = None
    pickles: int = 0
    arrays: int = 0

    @property
    def ok(self) -> bool:
        return not self.unsafe and self.error is None


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Every pickle of a model scanned, and whether the model is code (``kind``): ``ok`` only
    when no pickle is refused and loading runs no code of the model's own."""

    files: tuple[FileScan, ...] = ()
    trusted: bool = False
    kind: ModelKind = DATA

    @property
    def pickles_ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def ok(self) -> bool:
        return self.pickles_ok and not self.kind.is_code

    @property
    def unsafe_globals(self) -> list[str]:
        return sorted({name for f in self.files for name in f.unsafe})

    @property
    def errors(self) -> dict[str, str]:
        return {f.path: f.error for f in self.files if f.error is not None}

    def summary(self) -> dict[str, object]:
        """What an audit record keeps: the verdict, and what was trusted or refused."""
        verdict = "passed" if self.ok else ("trusted" if self.trusted else "rejected")
        return {
            "verdict": verdict,
            "kind": "code" if self.kind.is_code else "data",
            "code": list(self.kind.reasons),
            "files": [f.path for f in self.files],
            "unsafe_globals": self.unsafe_globals,
            "reasons": sorted({r for f in self.files for r in f.reasons}),
            "errors": self.errors,
        }


@dataclass(slots=True)
class _Counter:
    pickles: int = 0
    arrays: int = 0
    bytes: int = 0
    found: list[GlobalRef] = field(default_factory=list)
    uses: list[UseRef] = field(default_factory=list)


def scan_file(
    path: Path,
    *,
    loader: Loader = "joblib",
    label: str | None = None,
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    resolver: Resolver | None = None,
) -> FileScan:
    """Scan one pickle file as ``loader`` would read it (``joblib.load`` or ``pickle.load``)."""
    name = label or path.name
    counter = _Counter()
    judge = resolver or Resolver()
    compression: str | None = None
    try:
        with path.open("rb") as handle:
            compression = _compression(handle) if loader == "joblib" else None
            stream = _opened(handle, compression, max_bytes)
            _scan_stream(stream, counter, joblib=loader == "joblib")
    except PickleRejected as exc:
        return _result(name, loader, counter, compression, str(exc), judge)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        # a broken compressed stream or an unreadable file: nothing proves it harmless
        error = f"{type(exc).__name__}: {exc}"
        return _result(name, loader, counter, compression, error, judge)
    return _result(name, loader, counter, compression, None, judge)


def _result(
    name: str,
    loader: Loader,
    counter: _Counter,
    compression: str | None,
    error: str | None,
    judge: Resolver,
) -> FileScan:
    names = sorted({str(ref.global_) for ref in counter.found})
    why: dict[str, str] = {}
    for ref in counter.found:
        reason = judge.judge_name(ref.global_)
        if reason is not None:
            why.setdefault(str(ref.global_), reason)
    limit = size_limit(counter.bytes)
    for use in counter.uses:
        if str(use.global_) in why:
            continue
        reason = judge.judge_use(use.global_, use.use) or judge.judge_size(
            use.global_, use.largest, limit
        )
        if reason is not None:
            why[str(use.global_)] = f"{reason} (at byte {use.offset})"
    unsafe = sorted(why)
    return FileScan(
        path=name,
        loader=loader,
        globals=tuple(names),
        unsafe=tuple(unsafe),
        reasons=tuple(f"{n}: {why[n]}" for n in unsafe if why[n] != "not on the allowlist"),
        error=error,
        compression=compression,
        pickles=counter.pickles,
        arrays=counter.arrays,
    )


def _scan_stream(raw: io.BufferedReader, counter: _Counter, *, joblib: bool) -> None:
    """Every pickle in the stream, one after another, to its end: joblib.load reads only the
    first, but bytes after it are either another pickle (scanned) or not a model's (refused)."""
    stream = Stream(raw)
    while True:
        machine = Machine(stream, counter.found, joblib=joblib, uses=counter.uses)
        machine.run()
        counter.pickles += 1
        counter.arrays += machine.arrays
        counter.bytes = stream.position
        if stream.frame is not None and stream.frame.read(1):
            raise PickleRejected("bytes left in the last frame after STOP", stream.position)
        stream.frame = None
        if not raw.peek(1):
            return


def _compression(handle: io.BufferedReader) -> str | None:
    head = handle.read(8)
    handle.seek(0)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class _Limited(io.RawIOBase):
    """Reads from ``inner``, refusing to produce more than ``limit`` bytes: a zip bomb stops
    here, not in memory or on disk."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.total += len(data)
        if self.total > self.limit:
            raise PickleRejected(f"the file decompresses to more than {self.limit} bytes")
        buffer[: len(data)] = data
        return len(data)


class _Inflate(io.RawIOBase):
    """A zlib (or, with wbits=31, gzip) stream decompressed, and any streams after it: joblib
    reads only the first, the scanner reads on so that nothing follows unread."""

    def __init__(self, source: BinaryIO, wbits: int) -> None:
        self.source = source
        self.wbits = wbits
        self.decompressor = zlib.decompressobj(wbits)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = len(buffer)
        while True:
            if self.decompressor.eof:
                rest = self.decompressor.unused_data or self.source.read(_READ_CHUNK)
                if not rest:
                    return 0
                self.decompressor = zlib.decompressobj(self.wbits)
                self.pending = rest
            data = self.pending or self.decompressor.unconsumed_tail
            self.pending = b""
            if not data:
                data = self.source.read(_READ_CHUNK)
                if not data:
                    raise EOFError("the compressed stream ends early")
            out = self.decompressor.decompress(data, size)
            if out:
                buffer[: len(out)] = out
                return len(out)


def _opened(
    handle: io.BufferedReader, compression: str | None, max_bytes: int
) -> io.BufferedReader:
    """The bytes joblib.load unpickles: the file itself, or its decompressed stream."""
    inner: BinaryIO
    if compression is None:
        return handle
    if compression == "zlib":
        inner = _Inflate(handle, zlib.MAX_WBITS)  # type: ignore[assignment]
    elif compression == "gzip":
        inner = _Inflate(handle, 16 + zlib.MAX_WBITS)  # type: ignore[assignment]
    elif compression == "bz2":
        inner = bz2.BZ2File(handle, "rb")  # type: ignore[assignment]  # noqa: SIM115
    elif compression in ("lzma", "xz"):
        inner = lzma.LZMAFile(handle, "rb")  # type: ignore[assignment]  # noqa: SIM115
    else:
        raise PickleRejected(f"a {compression} file, which the scanner cannot read")
    return io.BufferedReader(_Limited(inner, max_bytes), buffer_size=_READ_CHUNK)


# --- which files of a model are pickles: its flavor says -----------------------------------------
def model_pickles(path: Path, flavor: str | None = None) -> PickleFiles:
    """The pickle files loading ``path`` would unpickle, each with the loader that reads it,
    as the model's flavor declares them (``Flavor.pickles``)."""
    from ferry.model.manifest import MANIFEST_FILE, read_manifest

    if path.is_dir() and (path / MANIFEST_FILE).is_file():
        manifest = read_manifest(path)
        artifact = path / manifest.artifact
        yield from get_flavor(manifest.flavor).pickles(artifact, manifest.flavor_options)
    elif path.name == "MLmodel" or (path.is_dir() and (path / "MLmodel").is_file()):
        yield from get_flavor("mlflow").pickles(path, {})
    elif path.is_file() and _is_sklearn_pickle(path, flavor):
        yield from get_flavor("sklearn").pickles(path, {})


def _is_sklearn_pickle(path: Path, flavor: str | None) -> bool:
    """A bare model file the scikit-learn flavor would load (named so, or by its suffix)."""
    if flavor is not None:
        return flavor == "sklearn"
    return path.suffix.lower() in PICKLE_SUFFIXES


def scan_model(path: Path, flavor: str | None = None, *, trust: bool = False) -> ScanReport:
    """Scan every pickle that loading the model at ``path`` would unpickle, and class the
    model as data or code (``ferry.model.kinds``); ``path`` may be a ``file.py:Class``."""
    kind = classify(path, flavor)
    base = path if path.is_dir() else path.parent
    files = []
    resolver = Resolver()
    for file, loader in model_pickles(path, flavor):
        label = str(file.relative_to(base)) if file.is_relative_to(base) else file.name
        if not file.is_file():
            continue  # the flavor reports the missing file when it loads
        files.append(scan_file(file, loader=loader, label=label, resolver=resolver))
    return ScanReport(files=tuple(files), trusted=trust, kind=kind)


UPLOAD_HINT = (
    "if you know where this file came from, an admin can register it with --trust "
    "(form field trust=true)"
)
LOCAL_HINT = "pass --trust (ferry.model.load(path, trust=True)) if you know where it came from"


def enforce(report: ScanReport, hint: str = UPLOAD_HINT) -> None:
    """``UnsafeModel`` naming the offending imports (or parse errors), or saying what in the
    model is code, unless the report is clean or trusted."""
    if report.ok or report.trusted:
        return
    unsafe, errors = report.unsafe_globals, report.errors
    if unsafe:
        more = f" and {len(unsafe) - 10} more" if len(unsafe) > 10 else ""
        reasons = {r.partition(": ")[0]: r for f in report.files for r in f.reasons}
        shown = ", ".join(reasons.get(name, name) for name in unsafe[:10]) + more
        message = f"the model's pickle imports names that are not allowed: {shown}"
    elif errors:
        path, error = next(iter(errors.items()))
        message = f"{path} is not a pickle the scanner can read, so it is refused: {error}"
    else:
        message = ""
    if report.kind.is_code:
        code = (
            f"the model is code, not data: {'; '.join(report.kind.reasons)}; loading it runs "
            "that Python code with your rights"
        )
        message = f"{message}; {code}" if message else code
    raise UnsafeModel(
        f"{message}; {hint}",
        globals=unsafe,
        errors=errors,
        code=list(report.kind.reasons),
        files=[f.path for f in report.files if not f.ok],
    )
