"""Running the container tools: every output line goes to a log sink as it appears (build
jobs stream it over HTTP), and a failure raises BuildFailed carrying the output's tail."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import IO

from ferry.errors import BuildFailed

LogSink = Callable[[str], None]
_TAIL_LINES = 40


def discard(line: str) -> None:
    """A sink that drops the output."""


def run_logged(
    argv: Sequence[str],
    log: LogSink,
    *,
    stdin: IO[bytes] | None = None,
    timeout: float = 3600.0,
    what: str | None = None,
    secrets: Sequence[str] = (),
) -> str:
    """Run ``argv``, feeding each output line (stdout and stderr merged) to ``log``; return
    the whole output. ``secrets`` are masked in what is logged."""
    log("$ " + _mask(shlex.join(argv), secrets))
    lines: list[str] = []
    with subprocess.Popen(  # noqa: S603 - argv is built by Ferry, never by a shell
        list(argv),
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = _mask(raw.decode("utf-8", "replace").rstrip("\n"), secrets)
                lines.append(line)
                log(line)
            process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            raise
    if process.returncode != 0:
        tail = "\n".join(lines[-_TAIL_LINES:])
        raise BuildFailed(
            f"{what or argv[0]} failed (exit {process.returncode}):\n{tail}",
            command=argv[0],
            exit_code=process.returncode,
        )
    return "\n".join(lines)


def run_quiet(argv: Sequence[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a short query command; the caller looks at the return code and output."""
    return subprocess.run(  # noqa: S603
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )


def pipe_logged(
    producer: Sequence[str], consumer: Sequence[str], log: LogSink, *, what: str
) -> str:
    """``producer | consumer``: the producer's stderr and the consumer's output are logged."""
    log("$ " + shlex.join(producer) + " | " + shlex.join(consumer))
    # the producer's stderr goes to a file: a full pipe nobody reads would stall it
    with (
        tempfile.TemporaryFile() as errors_file,
        subprocess.Popen(  # noqa: S603
            list(producer), stdout=subprocess.PIPE, stderr=errors_file
        ) as source,
    ):
        assert source.stdout is not None
        try:
            output = run_logged(consumer, log, stdin=source.stdout, what=what)
        finally:
            source.stdout.close()
            source.wait(timeout=600)
        errors_file.seek(0)
        errors = errors_file.read().decode("utf-8", "replace")
    for line in errors.splitlines():
        log(line)
    if source.returncode != 0:
        raise BuildFailed(
            f"{producer[0]} failed (exit {source.returncode}):\n"
            + "\n".join(errors.splitlines()[-_TAIL_LINES:]),
            command=producer[0],
            exit_code=source.returncode,
        )
    return output


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
