"""Run the inspector in a sandboxed child process: the API process never unpickles an uploaded
model, and the process that does holds no secret, has no network and is bounded in memory, CPU
time and file size (``ferry.security.sandbox``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import selectors
import signal
import subprocess
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import JsonValue, ValidationError

from ferry.config.settings import get_settings
from ferry.errors import FerryError, FlavorError, error_class
from ferry.security.sandbox import Sandbox, exit_signal
from ferry.server.control.inspector import InspectError, InspectReport, InspectSpec
from ferry.server.errors import status_of

log = logging.getLogger(__name__)

MODULE = "ferry.server.control.inspector"
MAX_REPORT_BYTES = 1024 * 1024
STDERR_TAIL_BYTES = 4096
# the signals the sandbox's rlimits send
LIMIT_SIGNALS: dict[int, str] = {
    signal.SIGXCPU: "CPU time limit (FERRY_INSPECT_TIMEOUT_SECONDS)",
    signal.SIGXFSZ: "file size limit (FERRY_SANDBOX_MAX_FILE_MB)",
}


class Inspector:
    """Starts inspector processes, at most ``slots`` at once per event loop, each with a
    deadline; turns their report into an ``InspectReport`` or the FerryError it names."""

    def __init__(self, *, timeout: float, slots: int, sandbox: Sandbox | None = None) -> None:
        self.timeout = timeout
        self.slots = slots
        # CPU time bounded by the deadline too: a child that stops its clock is still stopped
        self.sandbox = sandbox or Sandbox.from_settings(
            get_settings(), cpu_seconds=math.ceil(timeout) + 1
        )
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    async def run(self, spec: InspectSpec, work: Path) -> InspectReport:
        spec_file = work / "inspect.json"
        spec_file.write_text(spec.model_dump_json(), encoding="utf-8")
        async with self._slot():
            stdout, stderr, code = await self._execute(spec_file, work)
        report = _parse_report(stdout, stderr, code)
        if report.warnings:
            log.info("inspector warnings", extra={"warnings": report.warnings})
        if report.error is not None:
            raise rebuild_error(_without_paths(report.error, work))
        return report

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.slots)
        async with semaphore:
            yield

    async def _execute(self, spec_file: Path, work: Path) -> tuple[bytes, bytes, int]:
        launch = self.sandbox.python(MODULE, str(spec_file), writable=[work], cwd=work)
        # subprocess.Popen, not the loop's subprocess_exec: uvloop's (libuv's) spawn ignores
        # close_fds and handed the inspector the workers' inheritable listening socket. Started
        # from the event loop's thread, which lives as long as the process: the child's
        # parent-death signal follows the thread that forked it
        process = subprocess.Popen(  # noqa: S603 (argv built by the sandbox, no shell)
            launch.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=work,
            env=launch.env,
            close_fds=True,  # never the listening socket or a database connection
            start_new_session=True,  # its own process group: a timeout kills all it started
        )
        try:
            stdout, stderr, code = await asyncio.wait_for(
                asyncio.to_thread(_collect, process), self.timeout
            )
        except TimeoutError as exc:
            raise FlavorError(
                f"inspecting the model took longer than {self.timeout:g} s; it was stopped",
                timeout_seconds=self.timeout,
            ) from exc
        finally:
            if process.poll() is None:
                _kill_group(process.pid)  # its pipes close: the collecting thread ends
                await asyncio.to_thread(process.wait)
        return stdout, stderr, code


def _collect(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes, int]:
    """In a thread: the head of stdout (the report) and the tail of stderr, until both close;
    then the exit code. Bounded in memory however much the model writes."""
    assert process.stdout is not None
    assert process.stderr is not None
    head, tail = bytearray(), b""
    with selectors.DefaultSelector() as selector, process.stdout, process.stderr:
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is process.stdout:
                    head += chunk[: max(0, MAX_REPORT_BYTES - len(head))]
                else:
                    tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
    return bytes(head), tail, process.wait()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse_report(stdout: bytes, stderr: bytes, code: int) -> InspectReport:
    try:
        return InspectReport.model_validate_json(stdout)
    except ValidationError:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        log.warning("inspector exited with %s without a report", code, extra={"stderr": tail})
        limit = LIMIT_SIGNALS.get(exit_signal(code) or 0)
        if limit is not None:
            raise FlavorError(
                f"the model exceeded the inspector's {limit}", exit_code=code
            ) from None
        raise FlavorError(
            f"the model crashed the process that loaded it (exit code {code})"
            + (f": {tail[-1]}" if tail else ""),
            exit_code=code,
        ) from None


def _without_paths(error: InspectError, work: Path) -> InspectError:
    """The error with the server's staging folder cut out of its message and details."""
    prefixes = (f"{work}{os.sep}", str(work))

    def clean(value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            for prefix in prefixes:
                value = value.replace(prefix, "")
            return value
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    message = clean(error.message)
    assert isinstance(message, str)
    details = {key: clean(value) for key, value in error.details.items()}
    return InspectError(code=error.code, message=message, details=details)


def rebuild_error(error: InspectError) -> FerryError:
    """The FerryError the inspector reported; a server-side kind becomes a ``FlavorError``."""
    cls = error_class(error.code)
    exc = cls(error.message)
    exc.details = dict(error.details)
    if status_of(exc) >= 500:
        return FlavorError(error.message, reported_code=error.code, **error.details)
    return exc
