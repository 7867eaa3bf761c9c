"""Archive bombs, clashing entries and a killed server's staging, against a real ``ferry server``
(issue 13, "Archive amplification"): a sparse 6 GiB entry, 1 GiB of zeros and 200,000 entries
are each refused within 2 s with at most the configured limit written and nothing left
behind; error bodies never name a server path; the staging folders of a SIGKILLed server are
gone once a new one starts."""

from __future__ import annotations

import io
import os
import signal
import socket
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import ferry.model
from ferry.config.paths import artifacts_dir, cache_dir
from ferry.server.control.config import UPLOADS_DIR
from tests.archive_bombs import MIB, entries_bomb, sparse_bomb, zeros_bomb
from tests.integration.conftest import ferry_cli, start_ferry, stop_server

pytestmark = pytest.mark.integration
API = "/api/v1"
LIMIT = 32 * MIB  # small and quick: the 2 s bound must hold on a loaded machine
LIMITS = {
    "FERRY_UNPACK_MAX_BYTES": str(LIMIT),
    "FERRY_UNPACK_MAX_FILE_BYTES": str(LIMIT),
    "FERRY_UNPACK_MAX_ENTRIES": "100",
    "FERRY_UNPACK_MAX_SECONDS": "10",
}


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    pid: int

    @property
    def staging(self) -> Path:
        return cache_dir(self.home) / UPLOADS_DIR

    def leftovers(self) -> list[str]:
        staged = sorted(p.name for p in self.staging.iterdir()) if self.staging.is_dir() else []
        folder = artifacts_dir(self.home)
        blobs = sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        return staged + blobs


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return {**env, "FERRY_HOME": str(home), **LIMITS}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("archive-limits")
    process, url = start_ferry(
        ["server", "--workers", "1"], log=root / "server.log", env=_env(root / "home")
    )
    try:
        yield Server(url, root / "home", process.pid)
    finally:
        stop_server(process)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    found = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as handle:  # noqa: PTH123
            for child in handle.read().split():
                found.extend(_tree(int(child)))
    return found


def _written(pid: int) -> int:
    """Bytes the process tree has passed to write() so far (``wchar``: files deleted before
    they reach the disk count too)."""
    total = 0
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/io") as handle:  # noqa: PTH123
                fields = dict(line.split(": ") for line in handle.read().splitlines())
        except FileNotFoundError:
            continue
        total += int(fields["wchar"])
    return total


def _upload(server: Server, part: str, filename: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}{API}/models/bomb/versions", files={part: (filename, data)}, timeout=60
    )


BOMBS: list[tuple[str, Callable[[Path], Path], str, str]] = [
    ("sparse 6 GiB", sparse_bomb, "bundle", "'model/weights.bin' unpacks to more than"),
    ("1 GiB of zeros", zeros_bomb, "model", "'model/zeros.bin' unpacks to more than"),
    ("200,000 entries", entries_bomb, "bundle", "more than 100 entries"),
]


@pytest.mark.parametrize(("what", "build", "part", "message"), BOMBS, ids=[b[0] for b in BOMBS])
def test_archive_bombs_are_refused_quickly_and_leave_nothing(
    server: Server,
    tmp_path: Path,
    what: str,
    build: Callable[[Path], Path],
    part: str,
    message: str,
) -> None:
    data = build(tmp_path / "bomb.tar.gz").read_bytes()
    before = _written(server.pid)
    started = time.monotonic()
    response = _upload(server, part, "bomb.tar.gz", data)
    elapsed = time.monotonic() - started
    written = _written(server.pid) - before
    assert response.status_code == 413, (what, response.text)
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert message in error["message"], error
    assert error["details"]["field"] == part
    assert elapsed < 2.0, (what, elapsed)
    # the part file itself, the limit, and a MiB of logs and responses
    assert written <= len(data) + LIMIT + MIB, (what, written)
    assert server.leftovers() == [], what
    models = httpx.get(f"{server.url}{API}/models", timeout=10).json()
    assert models["total"] == 0


def _bundle_archive(tmp_path: Path, extra: list[tuple[str, bytes]]) -> bytes:
    """A real bundle (``ferry.model.save``) as .tar.gz, with ``extra`` entries after it."""
    from sklearn.linear_model import LogisticRegression

    from tests.pickle_cases import iris_frame

    frame, target = iris_frame()
    features = frame.drop(columns="color")
    model = LogisticRegression(max_iter=200).fit(features, target)
    bundle = tmp_path / "bundle"
    ferry.model.save(model, bundle, example=features.head(3))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(bundle).as_posix())
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([("./ferry.yaml", b"name: x\n")], "archive entry 'ferry.yaml' comes twice"),
        ([("model/model.joblib/inner.bin", b"x")], "is inside 'model/model.joblib'"),
    ],
    ids=["duplicate ferry.yaml", "file then folder"],
)
def test_clashing_entries_are_422_naming_the_entry_not_a_server_path(
    server: Server, tmp_path: Path, extra: list[tuple[str, bytes]], message: str
) -> None:
    data = _bundle_archive(tmp_path, extra)
    response = _upload(server, "bundle", "b.tar.gz", data)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert str(server.home) not in response.text
    assert "upload-" not in response.text
    assert server.leftovers() == []


def test_bundle_errors_name_files_as_the_archive_does(server: Server, tmp_path: Path) -> None:
    data = _bundle_archive(tmp_path, [])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        members = [(m, tar.extractfile(m)) for m in tar.getmembers()]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as out:
            for member, handle in members:
                if member.name.startswith("model/"):
                    continue  # the manifest lists it: the bundle is missing a file
                out.addfile(member, handle)
    assert any(n.startswith("model/") for n in names)
    response = _upload(server, "bundle", "b.tar.gz", buffer.getvalue())
    assert response.status_code == 422, response.text
    assert "is missing model/" in response.json()["error"]["message"]
    assert str(server.home) not in response.text
    assert "upload-" not in response.text


@pytest.mark.parametrize("cleaner", ["next start", "ferry gc"])
def test_staging_of_a_killed_server_is_removed(tmp_path: Path, cleaner: str) -> None:
    home = tmp_path / "home"
    process, url = start_ferry(["server", "--workers", "1"], log=tmp_path / "a.log", env=_env(home))
    staging = cache_dir(home) / UPLOADS_DIR
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        boundary = "ferryboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; '
            'filename="b.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n'
        ).encode()
        sock.sendall(
            f"POST {API}/models/m/versions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {100 * MIB}\r\n\r\n".encode()
            + head
            + b"x" * (2 * MIB)  # the rest never comes: the upload is in flight
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            (p / "parts" / "part-0").exists() for p in staging.glob("upload-*")
        ):
            time.sleep(0.05)
        left = sorted(p.name for p in staging.iterdir())
        assert any(name.startswith("upload-") for name in left), left
        for pid in reversed(_tree(process.pid)):
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        sock.close()
    time.sleep(0.5)  # the killed worker's descriptors are closed by the kernel
    assert sorted(p.name for p in staging.iterdir()) == left  # still there after the kill
    if cleaner == "ferry gc":
        gc = ferry_cli("gc", env=_env(home))
        assert gc.returncode == 0, gc.stderr
        assert "removed 1 staging folders" in gc.stdout, gc.stdout
        assert sorted(p.name for p in staging.iterdir()) == []
        return
    second, _ = start_ferry(["server", "--workers", "1"], log=tmp_path / "b.log", env=_env(home))
    try:
        assert sorted(p.name for p in staging.iterdir()) == []
    finally:
        stop_server(second)
