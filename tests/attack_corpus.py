"""Hostile model files, one builder for all: ``build(kind, dest, marker)`` writes the file (or
folder) of ``kind`` under ``dest`` and returns the path to hand to Ferry. Each payload, if it
ever runs, leaves a trace at ``marker`` (``ran(marker)`` says whether it did): a file there
(or, for the temporary-file gadget, one whose name starts with it).

Kinds (``KINDS``): the skops ``builtins.exec`` file, an MLflow folder whose
``python_function`` names a ``loader_module`` in its ``code`` path, the three allowlist
gadgets (``lightgbm.basic.NamedTemporaryFile``, ``sklearn.callback._transport.Listener``,
``ScoringMonitor.__setstate__``), the ``bytearray(3000000000)`` bomb, the 28 classic pickle
payloads (``classic:<name>``, from ``tests.pickle_cases``), a custom predictor that reads the
server's secrets (``FERRY_JWT_SECRET``, ``auth.secret``, the database URL) and one that opens
a socket. ``watching(kind, marker)`` must be around any load of ``scoring_monitor``: it
listens where the gadget connects and writes the marker on a connection.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.pickle_cases import classic_payloads

CLASSIC_NAMES = (
    *(f"plain.p{protocol}.pkl" for protocol in range(6)),
    "after_forest_buffers.joblib",
    "second_pickle_after_forest.joblib",
    "dict_next_to_pipeline.joblib",
    "dict_next_to_pipeline.pkl",
    *(f"after_forest_buffers.{name}.joblib" for name in ("zlib", "gzip", "bz2", "lzma", "xz")),
    "inside_object_array.joblib",
    "stack_global_from_memo.pkl",
    "eval.p0.pkl",
    "eval.p4.pkl",
    "exec.p2.pkl",
    "getattr_import_chain.pkl",
    "attrgetter_chain.pkl",
    "partial.pkl",
    "copyreg_reconstructor_popen.pkl",
    "popen.p3.pkl",
    "runpy_run_code.pkl",
    "nested_pickle_loads.pkl",
    "benign_then_evil.pkl",
)
# kinds that are code by their format (a custom class or a pyfunc): refused as code, not by
# the pickle scanner
CODE_KINDS = ("mlflow_loader_module", "predictor_reads_secrets", "predictor_opens_socket")
PICKLE_KINDS = ("gadget_tempfile", "gadget_listener", "gadget_scoring_monitor", "bytearray_bomb")
KINDS = (
    "skops_exec",
    *CODE_KINDS,
    *PICKLE_KINDS,
    *(f"classic:{name}" for name in CLASSIC_NAMES),
)


def ran(marker: Path) -> bool:
    """Whether a payload left its trace (the watcher's own socket is not one)."""
    own = socket_path(marker)
    return marker.exists() or any(p != own for p in marker.parent.glob(f"{marker.name}*"))


def build(kind: str, dest: Path, marker: Path) -> Path:
    """Write the hostile model ``kind`` under the folder ``dest``; the path to load."""
    dest.mkdir(parents=True, exist_ok=True)
    if kind.startswith("classic:"):
        name = kind.split(":", 1)[1]
        return classic_payloads(dest / "classic", marker)[name]
    return _BUILDERS[kind](dest, marker)


def socket_path(marker: Path) -> Path:
    """Where the ScoringMonitor gadget connects (a Unix socket next to the marker)."""
    return marker.with_name(f"{marker.name}.sock")


@contextlib.contextmanager
def watching(kind: str, marker: Path) -> Iterator[None]:
    """For ``gadget_scoring_monitor``: listen on its socket and write ``marker`` when anything
    connects (the gadget's ``__setstate__`` does). For ``gadget_listener``: watch for its
    socket file (the Listener unlinks it when it is closed) and keep a ``.seen`` trace. Nothing
    for the other kinds."""
    if kind == "gadget_listener":
        with _polling(marker):
            yield
        return
    if kind != "gadget_scoring_monitor":
        yield
        return
    path = socket_path(marker)
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            marker.write_text("connected", encoding="utf-8")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _polling(marker: Path) -> Iterator[None]:
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.002):
            if marker.exists():
                marker.with_name(f"{marker.name}.seen").write_text("ran", encoding="utf-8")
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)


# --- builders ---------------------------------------------------------------------------------
def _call_pickle(module: str, name: str, args: tuple[object, ...]) -> bytes:
    """``module.name(*args)`` as protocol 2, the name written as given (pickle itself would
    write the function's real module, which is the point of the gadgets)."""
    body = pickle.dumps(args, protocol=2)[2:-1]  # the tuple's opcodes, no PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + body + b"R."


def _skops_exec(dest: Path, marker: Path) -> Path:
    """A skops schema whose node is ``builtins.exec`` with a string: skops calls
    ``exec(code)`` (ConstructorFromReduceNode) when the type is trusted."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    schema = {
        "__class__": "exec",
        "__module__": "builtins",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "str",
                    "__module__": "builtins",
                    "__loader__": "JsonNode",
                    "content": json.dumps(code),
                    "is_json": True,
                    "__id__": 2,
                }
            ],
            "__id__": 1,
        },
        "__id__": 0,
        "protocol": 2,
        "_skops_version": "0.16.0",
    }
    path = dest / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return path


def _mlflow_loader_module(dest: Path, marker: Path) -> Path:
    root = dest / "mlflow_model"
    (root / "code").mkdir(parents=True, exist_ok=True)
    (root / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: evil_loader\n"
        "    code: code\n"
        "    python_version: 3.11.0\n"
        "signature:\n"
        '  inputs: \'[{"type": "double", "name": "x", "required": true}]\'\n'
        '  outputs: \'[{"type": "double", "required": true}]\'\n',
        encoding="utf-8",
    )
    (root / "code" / "evil_loader.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n\n\n"
        "class _Model:\n"
        "    def predict(self, data, params=None):\n"
        "        return [0.0] * len(data)\n\n\n"
        "def _load_pyfunc(path):\n"
        "    return _Model()\n",
        encoding="utf-8",
    )
    return root


_PREDICTOR_TAIL = (
    "\n\nclass Model:\n"
    "    classes = [0, 1]\n\n"
    "    def predict(self, frame):\n"
    "        return [0] * len(frame)\n"
)


def _predictor_reads_secrets(dest: Path, marker: Path) -> Path:
    path = dest / "predictor.py"
    path.write_text(
        "import os\n"
        "import pathlib\n\n"
        "found = {name: os.environ.get(name) for name in "
        "('FERRY_JWT_SECRET', 'FERRY_AUTH_SECRET', 'FERRY_DATABASE_URL')}\n"
        "home = pathlib.Path(os.environ.get('FERRY_HOME', pathlib.Path.home() / '.ferry'))\n"
        "try:\n"
        "    found['auth.secret'] = (home / 'auth.secret').read_text()\n"
        "except OSError as exc:\n"
        "    found['auth.secret'] = repr(exc)\n"
        f"pathlib.Path({str(marker)!r}).write_text(repr(found))\n" + _PREDICTOR_TAIL,
        encoding="utf-8",
    )
    return Path(f"{path}:Model")


def _predictor_opens_socket(dest: Path, marker: Path) -> Path:
    path = dest / "predictor.py"
    path.write_text(
        "import pathlib\n"
        "import socket\n\n"
        "sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "try:\n"
        "    sock.connect(('127.0.0.1', 9))\n"
        "    outcome = 'connected'\n"
        "except OSError as exc:\n"
        "    outcome = repr(exc)\n"
        "sock.close()\n"
        f"pathlib.Path({str(marker)!r}).write_text(outcome)\n" + _PREDICTOR_TAIL,
        encoding="utf-8",
    )
    return Path(f"{path}:Model")


def _gadget_tempfile(dest: Path, marker: Path) -> Path:
    """``lightgbm.basic.NamedTemporaryFile`` is ``tempfile.NamedTemporaryFile``: a file whose
    name starts with the marker's, next to it, kept (delete=False)."""
    args = ("w+b", -1, None, None, "", marker.name, str(marker.parent), False)
    path = dest / "model.pkl"
    path.write_bytes(_call_pickle("lightgbm.basic", "NamedTemporaryFile", args))
    return path


def _gadget_listener(dest: Path, marker: Path) -> Path:
    """``sklearn.callback._transport.Listener`` is ``multiprocessing.connection.Listener``: a
    listening Unix socket at the marker's path."""
    path = dest / "model.pkl"
    path.write_bytes(_call_pickle("sklearn.callback._transport", "Listener", (str(marker),)))
    return path


def _gadget_scoring_monitor(dest: Path, marker: Path) -> Path:
    """A ``ScoringMonitor`` whose listener handle names ``socket_path(marker)``: its
    ``__setstate__`` connects there (``can_reuse_listener``)."""
    from sklearn.callback._scoring_monitor import ScoringMonitor
    from sklearn.callback._transport import ListenerHandle

    monitor = ScoringMonitor.__new__(ScoringMonitor)
    monitor.__dict__.update(
        _scoring=None,
        _log=[],
        _estimator_scorers={},
        _listener_handle=ListenerHandle(address=str(socket_path(marker)), authkey=b"k" * 32),
    )
    path = dest / "model.pkl"
    path.write_bytes(pickle.dumps(monitor, protocol=2))
    return path


def _bytearray_bomb(dest: Path, marker: Path) -> Path:
    """``bytearray(3000000000)``: 32 bytes that allocate 2.8 GB (no marker: it only eats
    memory)."""
    path = dest / "model.pkl"
    path.write_bytes(b"\x80\x02cbuiltins\nbytearray\n\x8a\x05\x00^\xd0\xb2\x00\x85R.")
    return path


_BUILDERS: dict[str, Callable[[Path, Path], Path]] = {
    "skops_exec": _skops_exec,
    "mlflow_loader_module": _mlflow_loader_module,
    "predictor_reads_secrets": _predictor_reads_secrets,
    "predictor_opens_socket": _predictor_opens_socket,
    "gadget_tempfile": _gadget_tempfile,
    "gadget_listener": _gadget_listener,
    "gadget_scoring_monitor": _gadget_scoring_monitor,
    "bytearray_bomb": _bytearray_bomb,
}
