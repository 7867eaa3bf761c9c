"""Bytecode for exactly what serving imports, compiled while the image is built.

``python -m ferry.packaging.warm /model`` starts ``ferry serve /model`` on a loopback port
(one worker in process, then two forked workers: both paths a container may take), waits for
``/readyz``, answers the version's stored example over the native and MLflow protocols, reads
``/metrics`` and stops the server. The build runs it as root with bytecode writing on, after
the packages were installed without bytecode (``pip --no-compile``): Python writes a ``.pyc``
for each module the server imported, owned by root and read-only to the serving user, while
what serving never imports (other CLI commands, SQL dialects, test helpers) stays source
only. A container start then reads ready bytecode instead of compiling it in memory again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferry.errors import BuildFailed

WORKER_COUNTS = (1, 2)
READY_SECONDS = 180.0
STOP_SECONDS = 15.0


def warm(bundle: Path, workers: Sequence[int] = WORKER_COUNTS) -> list[str]:
    """Serve ``bundle`` once per worker count and answer its example; one line per request.

    Every file the servers write (FERRY_HOME, metric files) goes to a temporary folder that
    is removed afterwards, so the image layer gets the bytecode and nothing else."""
    requests = example_requests(bundle)
    lines: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="ferry-warm-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update({"FERRY_HOME": str(scratch / "home"), "TMPDIR": str(scratch)})
        for count in workers:
            lines += _serve_once(bundle, count, requests, env, scratch / f"serve-{count}.log")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return lines


def example_requests(bundle: Path) -> list[tuple[str, dict[str, Any]]]:
    """(path, JSON body) pairs that predict the stored example; none without an example."""
    from ferry.model.manifest import read_manifest

    manifest = read_manifest(bundle)
    if manifest.example is None:
        return []
    split = json.loads((bundle / manifest.example).read_text(encoding="utf-8"))
    columns, data = split["columns"], split["data"]
    records = [dict(zip(columns, row, strict=True)) for row in data]
    return [
        (f"/v1/models/{manifest.name}/predict", {"instances": records}),
        ("/invocations", {"dataframe_split": {"columns": columns, "data": data}}),
    ]


def _serve_once(
    bundle: Path,
    workers: int,
    requests: list[tuple[str, dict[str, Any]]],
    env: dict[str, str],
    log_path: Path,
) -> list[str]:
    port = _free_port()
    argv = [
        _ferry_command(), "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-predictions", "off",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(  # noqa: S603 - our own command line
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(server, base, log_path)
            lines = [f"workers={workers} GET /readyz 200"]
            for path, body in requests:
                status = _post(base + path, body)
                if status != 200:
                    raise BuildFailed(f"warm-up: POST {path} answered {status}:\n{_tail(log_path)}")
                lines.append(f"workers={workers} POST {path} {status}")
            _get(base + "/metrics")
            lines.append(f"workers={workers} GET /metrics 200")
            return lines
        finally:
            server.terminate()
            try:
                server.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _ferry_command() -> str:
    """The ``ferry`` script beside this interpreter (what the image's entrypoint runs)."""
    script = Path(sys.executable).parent / "ferry"
    return str(script) if script.exists() else shutil.which("ferry") or "ferry"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(server: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if server.poll() is not None:
            raise BuildFailed(
                f"warm-up: ferry serve exited with {server.returncode}:\n{_tail(log_path)}"
            )
        try:
            _get(base + "/readyz")
            return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise BuildFailed(
                f"warm-up: ferry serve was not ready in {READY_SECONDS:.0f} s:\n{_tail(log_path)}"
            )
        time.sleep(0.2)


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback http
        answer.read()


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback http
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            answer.read()
            status: int = answer.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv: list[str]) -> int:
    bundle = Path(argv[1] if len(argv) > 1 else "/model")
    try:
        for line in warm(bundle):
            sys.stdout.write(f"warm-up: {line}\n")
    except BuildFailed as exc:
        sys.stdout.write(f"{exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
