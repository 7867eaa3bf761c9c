"""Worker processes that share the loaded models: load once, then fork.

The parent loads every model and builds the app, binds the socket, freezes the garbage
collector's view of what it loaded, and forks N children that each run uvicorn on the shared
socket. Model weights stay in pages shared copy-on-write, so N workers cost far less than N
copies (``ferry_worker_memory_bytes{kind="pss"}`` in /metrics shows each worker's share).
The parent restarts a worker that dies and stops them all on SIGTERM/SIGINT; a worker whose
parent dies (even by SIGKILL) stops too, so none is left holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp

log = logging.getLogger(__name__)

RESTART_BACKOFF_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 15.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def start_loading() -> None:
    """Turn the cycle collector off while a server command imports and loads its models.

    Startup creates hundreds of thousands of objects that live as long as the process
    (modules, classes, the models), and the collector would scan them again and again as
    they are made: a fifth of the command's time to its first answer. ``run`` collects
    once, freezes what survived and turns the collector back on before serving."""
    gc.disable()


def _freeze_loaded() -> None:
    # what is loaded now lives as long as the process: keep it out of the collector's
    # scans (1000-row requests create enough objects to trigger many; +18% rows/s), and
    # in forked workers out of its writes, so pages stay shared. No collection first: over
    # the whole startup heap it costs 150 ms of the time to the first answer and finds about
    # a thousand small objects of import-time garbage, which stay frozen
    gc.freeze()
    gc.enable()


def run(app: ASGIApp, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Serve ``app`` until stopped: in this process (one worker) or in ``workers`` forks.

    ``options`` are uvicorn's (log level, TLS files, ...). Logging is set up before (see
    ``ferry.config.logging``): uvicorn is told to keep it (``log_config=None``), and forked
    workers inherit it. Every request goes through the access log."""
    from ferry.config.settings import get_settings
    from ferry.server.accesslog import AccessLogMiddleware
    from ferry.server.connections import ConnectionLimits, bounded_protocol, raise_descriptor_limit
    from ferry.server.state import STATE_NAME, FerryState

    settings = get_settings()
    limits = ConnectionLimits.from_settings(settings, raise_descriptor_limit())
    log.debug("connection limits: %s", limits)
    # no route speaks WebSocket: without this uvicorn imports a WebSocket stack per process
    state = getattr(getattr(app, "state", None), STATE_NAME, None)
    routes = state.routes if isinstance(state, FerryState) else None
    http = bounded_protocol(limits, routes)
    options = {"ws": "none", "http": http, "log_config": None, **options}
    app = AccessLogMiddleware(app, settings.access_log_sample)
    _freeze_loaded()
    if workers == 1:
        import uvicorn

        uvicorn.run(app, host=host, port=port, **options)
        return
    Supervisor(app, bind_socket(host, port), workers, options).run()


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    # not inheritable (Python's default): forked workers keep it anyway, and a program a
    # worker starts (the inspector) must not, or it holds the port after the server is gone
    # (uvloop's subprocesses get every inheritable descriptor: it ignores close_fds)
    return sock


@dataclass
class Supervisor:
    """Forks and watches ``workers`` uvicorn processes serving ``app`` on one socket."""

    app: ASGIApp
    sock: socket.socket
    workers: int
    uvicorn_options: dict[str, Any]
    children: dict[int, int] = field(default_factory=dict)  # pid -> worker index
    stopping: bool = False
    parent: int = field(default_factory=os.getpid)

    def run(self) -> None:
        for index in range(self.workers):
            self._spawn(index)
        previous = {
            sig: signal.signal(sig, self._on_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop, never return into the parent's code
            code = 0
            for sig in (signal.SIGTERM, signal.SIGINT):  # not the parent's handlers
                signal.signal(sig, signal.SIG_DFL)
            stop_with_parent(self.parent)
            os.environ["FERRY_WORKER_INDEX"] = str(index)  # which worker this is, for its logs
            try:
                self._serve_child()
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = index
        log.info("started worker %d (pid %d)", index, pid)

    def _serve_child(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app, **self.uvicorn_options)
        uvicorn.Server(config).run(sockets=[self.sock])

    def _watch(self) -> None:
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return
            except InterruptedError:  # a signal arrived; _on_stop already forwarded it
                continue
            index = self.children.pop(pid, None)
            if index is None:
                continue
            _mark_dead(pid)
            if not self.stopping:
                log.error("worker %d (pid %d) exited with %s; restarting", index, pid, status)
                time.sleep(RESTART_BACKOFF_SECONDS)
                self._spawn(index)

    def _on_stop(self, signum: int, frame: object) -> None:
        if self.stopping:  # a second signal: stop waiting for a graceful exit
            for pid in self.children:
                _kill(pid, signal.SIGKILL)
            return
        self.stopping = True
        for pid in self.children:
            _kill(pid, signal.SIGTERM)


def stop_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send this process ``sig`` when ``parent`` (the process that forked it)
    dies, however it dies; SIGTERM: uvicorn closes its listener at once, then finishes the
    requests in flight. Without it, workers of a SIGKILLed supervisor served on, orphaned and
    never restarted, and a new server could not bind their port. Linux only (elsewhere, a
    no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("could not ask to be stopped with the parent: errno %d", ctypes.get_errno())
        return
    if os.getppid() != parent:  # the parent died before the request: nobody will send it
        os.kill(os.getpid(), sig)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _mark_dead(pid: int) -> None:
    """Let multiprocess Prometheus metrics drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
