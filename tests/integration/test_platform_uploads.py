"""Uploads to ``ferry server`` survive a SIGKILL mid-upload: after a restart there is no new
version, no row points at a missing blob, and the same upload then registers as version 1."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

import ferry.model
from ferry.client import Client
from ferry.registry import Registry, write_archive
from tests.integration.conftest import platform_server, start_ferry

pytestmark = pytest.mark.integration

BIG_BYTES = 50 * 1024 * 1024
CHUNK = 1024 * 1024


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle of more than 50 MB (a k-NN model keeps its training rows)."""
    rng = np.random.default_rng(0)
    X = rng.random((BIG_BYTES // (8 * 12) + 20_000, 12))
    y = (X[:, 0] > 0.5).astype(int)
    folder = tmp_path_factory.mktemp("big")
    ferry.model.save(
        KNeighborsClassifier(n_neighbors=3).fit(X, y), folder / "bundle", example=X[:5], name="big"
    )
    archive = write_archive(folder / "bundle", folder / "big.tar.gz")
    assert archive.stat().st_size > BIG_BYTES
    return archive


def multipart(archive: Path, boundary: str, sent: threading.Event) -> Iterator[bytes]:
    """The archive as one multipart part, sent slowly; ``sent`` is set half way through."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; '
        f'filename="big.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n'
    ).encode()
    size = archive.stat().st_size
    done = 0
    with archive.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            done += len(chunk)
            if done > size // 2:
                sent.set()
            yield chunk
            time.sleep(0.01)
    yield f"\r\n--{boundary}--\r\n".encode()


def test_sigkill_during_a_large_upload_leaves_no_version(big_archive: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"FERRY_HOME": str(home)}
    process, url = start_ferry(["server", "--workers", "1"], log=tmp_path / "first.log", env=env)
    boundary = uuid.uuid4().hex
    half_sent = threading.Event()
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            httpx.post(
                f"{url}/api/v1/models/big/versions",
                content=multipart(big_archive, boundary, half_sent),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
                timeout=60,
            )
        except httpx.HTTPError as exc:  # the server dies under it: expected
            failure.append(exc)

    sender = threading.Thread(target=upload)
    sender.start()
    assert half_sent.wait(timeout=120)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    sender.join(timeout=60)
    assert failure, "the upload should have been cut off"

    with Registry.open(f"sqlite:///{home / 'ferry.db'}", str(home / "artifacts")) as registry:
        assert registry.metadata.row_counts()["versions"] == 0
        report = registry.gc(grace_seconds=0)
        assert report.missing == []

    with platform_server(home, "--workers", "1", log=tmp_path / "second.log") as again:
        missing = httpx.get(f"{again}/api/v1/models/big/versions")
        assert missing.status_code == 404
        with big_archive.open("rb") as handle:
            response = httpx.post(
                f"{again}/api/v1/models/big/versions",
                files={"bundle": ("big.tar.gz", handle, "application/gzip")},
                timeout=300,
            )
        assert response.status_code == 201, response.text
        assert response.json()["version"] == 1


def test_20_concurrent_uploads_on_postgresql_get_versions_1_to_20(
    pg_database_factory: Callable[[], str],
    iris_data: tuple[pd.DataFrame, pd.Series],
    tmp_path: Path,
) -> None:
    """Twenty different models uploaded at once over HTTP to a server on PostgreSQL: each
    version number 1..20 is given exactly once, with no gap."""
    X, y = iris_data
    bundles = []
    for i in range(20):
        model = LogisticRegression(C=0.05 * (i + 1), max_iter=1000).fit(X, y)
        bundles.append(tmp_path / f"v{i}")
        ferry.model.save(model, bundles[-1], example=X.head(3), name="iris")
    home = tmp_path / "home"
    env = {"FERRY_DATABASE_URL": pg_database_factory()}
    with (
        platform_server(home, "--workers", "2", log=tmp_path / "server.log", env=env) as url,
        ThreadPoolExecutor(20) as pool,
    ):

        def upload(bundle: Path) -> int:
            with Client(url, timeout=300) as client:
                return client.register(bundle, "iris").version

        versions = list(pool.map(upload, bundles))
        listed = httpx.get(f"{url}/api/v1/models/iris/versions", params={"limit": 100}).json()
    assert sorted(versions) == list(range(1, 21))
    assert sorted(item["version"] for item in listed["items"]) == list(range(1, 21))
