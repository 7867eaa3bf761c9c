"""Code models answer from a sandboxed process of their own, never from a worker.

A worker verifies API keys and holds the server's secrets (``FERRY_JWT_SECRET``, the database
URL, S3 credentials), so a model whose loading runs its uploader's Python (``kinds.classify``:
a custom class, an MLflow python_function) is loaded by ``python -m
ferry.server.serving.modelhost`` inside ``ferry.security.sandbox`` instead. The worker keeps a
``LoadedModel`` whose predictor is an ``IsolatedPredictor``: the same Predictor protocol, so
the predict pipeline, batching and metrics do not change. Data models load in-process as before.

Each call writes the batch to the process's stdin and reads the answer from its stdout
(``modelwire``: npy and JSON only, sizes bounded, a deadline per call). A process that dies,
misses its deadline or answers garbage is killed and the request answers ``ModelCrashed`` (a 500
naming the model, nothing of the process); the next call starts a new one.

What it costs (``bench/code_models.py``, 2 cores, custom iris class): a predict call takes
about 0.2 ms more (p50 95 -> 294 us at 1 row), so one worker answers 1-row HTTP requests at
945/s instead of 1166/s (p50 827 -> 1003 us); the process starts in 0.5 s.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ferry.config.settings import Settings, get_settings
from ferry.errors import FlavorError, ModelCrashed
from ferry.forks import reset_after_fork
from ferry.model.loaded import LoadedModel, load, load_bundle
from ferry.model.manifest import MANIFEST_FILE, Manifest
from ferry.model.signature import Batch, ColumnSpec
from ferry.security.sandbox import Sandbox
from ferry.server.serving.modelwire import (
    Frame,
    WireError,
    batch_frame,
    decode_array,
    read_frame,
    write_frame,
)

log = logging.getLogger(__name__)

MODULE = "ferry.server.serving.modelhost"
STDERR_LINES = 200  # a model's stderr lines logged per process, at most (the rest is dropped)


class ModelRaised(Exception):  # noqa: N818 (the model's own exception, reported by its process)
    """The model raised while predicting; the pipeline reports it like an in-process one."""


def load_local(path: Path) -> LoadedModel:
    """``ferry serve PATH``: a bundle like a registered version; a raw file in-process (the
    caller's own file, scanned and trusted or refused by ``check_pickles`` before)."""
    if (path / MANIFEST_FILE).is_file():
        return load_version(path)
    return load(path, trust=True)


def load_version(folder: Path, settings: Settings | None = None) -> LoadedModel:
    """A registered version's bundle: in this process when it is data, behind a sandboxed
    model process when loading it runs code, or may: a pickle the scanner refused, loaded only
    because a key with the trust scope vouched for it, is treated as code."""
    from ferry.model.scanner.scan import scan_model

    if scan_model(folder).ok:
        return load_bundle(folder)
    settings = settings or get_settings()
    return load_isolated(
        folder,
        Sandbox.from_settings(settings),
        timeout=settings.model_timeout_seconds,
        load_timeout=settings.inspect_timeout_seconds,
    )


def load_isolated(
    root: Path, sandbox: Sandbox, *, timeout: float, load_timeout: float
) -> LoadedModel:
    """The bundle's manifest, example and expected output read here (data); its model loaded
    in a sandboxed process (code)."""

    def isolated(manifest: Manifest) -> IsolatedPredictor:
        label = f"{manifest.name!r} version {manifest.version or '1'}"
        return IsolatedPredictor(root, label, sandbox, timeout=timeout, load_timeout=load_timeout)

    return load_bundle(root, predictor_of=isolated)


class IsolatedPredictor:
    """A Predictor whose model lives in a sandboxed process; one call at a time per process."""

    def __init__(
        self, bundle: Path, label: str, sandbox: Sandbox, *, timeout: float, load_timeout: float
    ) -> None:
        self.bundle = bundle
        self.label = label
        self.sandbox = sandbox
        self.timeout = timeout
        self.load_timeout = load_timeout
        self.restarts = 0
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._launcher: _Launcher | None = None
        self._has_proba = False
        self._classes: list[Any] | None = None
        self._forked = False  # a forked worker starts its own process, not a restart
        self._inherited: list[subprocess.Popen[bytes]] = []  # the parent's, after a fork
        with self._lock:
            self._start()  # a model that cannot load fails its version's load, here
        reset_after_fork(self, "_after_fork")

    @property
    def declared_inputs(self) -> list[ColumnSpec] | None:
        return None

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    @property
    def has_proba(self) -> bool:
        return self._has_proba

    def predict(self, batch: Batch) -> np.ndarray:
        return self._call("predict", batch)

    def predict_proba(self, batch: Batch) -> np.ndarray:
        if not self._has_proba:
            raise FlavorError(f"model {self.label} has no predict_proba() method")
        return self._call("predict_proba", batch)

    def close(self) -> None:
        with self._lock:
            self._stop()

    # --- the process ----------------------------------------------------------------------------
    def _call(self, op: str, batch: Batch) -> np.ndarray:
        with self._lock:
            process = self._process if self._alive() else None
            if process is None:
                if not self._forked:
                    self.restarts += 1
                    log.warning("model %s: starting its process again", self.label)
                self._forked = False
                process = self._start()
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                write_frame(process.stdin.fileno(), batch_frame(op, batch))
                reply = read_frame(process.stdout.fileno(), time.monotonic() + self.timeout)
                result = self._result(reply)
            except TimeoutError:
                self._stop()
                raise ModelCrashed(
                    f"model {self.label} did not answer within {self.timeout:g} s "
                    "(FERRY_MODEL_TIMEOUT_SECONDS); its process was stopped and starts again "
                    "on the next request",
                    timeout_seconds=self.timeout,
                ) from None
            except (EOFError, OSError, WireError) as exc:
                code = self._stop()
                log.error("model %s: its process failed (%s, exit %s)", self.label, exc, code)
                raise ModelCrashed(
                    f"model {self.label} stopped while predicting; it starts again on the next "
                    "request"
                ) from None
        if result.shape[:1] != (batch.n_rows,):
            raise ModelRaised(
                f"the model answered {result.shape[:1]} rows for a batch of {batch.n_rows}"
            )
        return result

    def _result(self, reply: Frame) -> np.ndarray:
        header = reply.header
        if header.get("ok") is True:
            arrays = header.get("arrays")
            if not isinstance(arrays, list) or len(arrays) != 1 or len(reply.blobs) != 1:
                raise WireError("a reply holds no single array")
            return decode_array(arrays[0], reply.blobs[0])
        raise ModelRaised(str(header.get("message", "the model failed"))[:500])

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _start(self) -> subprocess.Popen[bytes]:
        """Start the process (from the launcher's long-lived thread) and read its hello."""
        launch = self.sandbox.python(MODULE, str(self.bundle), readable=[self.bundle])
        if self._launcher is None or not self._launcher.is_alive():
            self._launcher = _Launcher()
            weakref.finalize(self, self._launcher.stop)
        process = self._launcher.run(
            lambda: subprocess.Popen(  # noqa: S603 (argv built by the sandbox, no shell)
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=launch.env,
                close_fds=True,  # its pipes only: never the listening socket
                start_new_session=True,
            )
        )
        self._process = process
        weakref.finalize(self, _kill, process, os.getpid())
        assert process.stdout is not None
        assert process.stderr is not None
        threading.Thread(target=_log_stderr, args=(process.stderr, self.label), daemon=True).start()
        try:
            hello = read_frame(process.stdout.fileno(), time.monotonic() + self.load_timeout)
        except TimeoutError:
            self._stop()
            raise FlavorError(
                f"model {self.label} did not load within {self.load_timeout:g} s "
                "(FERRY_INSPECT_TIMEOUT_SECONDS)"
            ) from None
        except (EOFError, OSError, WireError):
            code = self._stop()
            raise FlavorError(
                f"model {self.label} crashed its sandboxed process while loading (exit {code})",
                exit_code=code,
            ) from None
        if hello.header.get("ok") is not True:
            self._stop()
            message = str(hello.header.get("message", "unknown error"))[:500]
            raise FlavorError(f"model {self.label} could not be loaded: {message}")
        self._has_proba = hello.header.get("has_proba") is True
        classes = hello.header.get("classes")
        self._classes = classes if isinstance(classes, list) else None
        return process

    def _stop(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        _kill(process, os.getpid())
        return process.returncode

    def _after_fork(self) -> None:
        """In a forked worker: the parent's process and thread are not ours; start our own.
        Its pipes are kept, never closed here: the parent's stderr thread may hold a file
        object's lock at the fork, and closing it in the child would wait forever."""
        if self._process is not None:
            self._inherited.append(self._process)
        self._process, self._launcher = None, None
        self._lock = threading.Lock()
        self._forked = True


class _Launcher:
    """A thread that starts processes and lives as long as the predictor: a sandboxed child
    dies with the thread that forked it (parent-death signal), so not a pool thread's."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(
            target=self._serve, name="ferry-model-launcher", daemon=True
        )
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._jobs.put((_STOP, concurrent.futures.Future()))

    def run(self, job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            job, future = self._jobs.get()
            if job is _STOP:
                return
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the caller, which raises it
                future.set_exception(exc)


def _STOP() -> None:  # noqa: N802 (a sentinel job)
    return None


def _kill(process: subprocess.Popen[bytes], owner: int) -> None:
    """Stop the process, from the process that started it (a forked worker never kills its
    parent's model process)."""
    if os.getpid() != owner:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _log_stderr(stream: Any, label: str) -> None:
    with stream:
        for count, raw in enumerate(stream):
            if count < STDERR_LINES:
                log.info("model %s: %s", label, raw[:1000].decode("utf-8", "replace").rstrip())
