"""TLS: ``ferry certs dev`` makes a pair, and ``ferry server`` (forked workers) and ``ferry serve``
answer over https with it, verified against the certificate; plain http and unverified clients
are turned away, and a wrong pair is refused at startup."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
STARTUP_SECONDS = 90.0


def ferry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "ferry", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def dev_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("certs")
    made = ferry("certs", "dev", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "dev-cert.pem" in made.stdout
    again = ferry("certs", "dev", "--out", str(out))
    assert again.returncode == 1
    assert "--force" in again.stdout + again.stderr
    return out / "dev-cert.pem", out / "dev-key.pem"


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@contextmanager
def https_server(args: list[str], cert: Path, log: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "ferry", *args, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", verify=trusting(cert), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_server_with_workers_answers_over_https(
    dev_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = dev_pair
    env = {"FERRY_HOME": str(tmp_path / "home")}
    args = ["server", "--workers", "2", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with https_server(args, cert, tmp_path / "server.log", env) as url:
        for host in (url, url.replace("127.0.0.1", "localhost")):
            answer = httpx.get(f"{host}/api/v1/models", verify=trusting(cert), timeout=10)
            assert answer.status_code == 200
            assert answer.json()["total"] == 0
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", timeout=10)  # the system's CAs do not know it
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10)
    assert "https://127.0.0.1" in (tmp_path / "server.log").read_text()


def test_serve_predicts_over_https(
    dev_pair: tuple[Path, Path],
    tmp_path: Path,
    iris_bundle: Path,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    cert, key = dev_pair
    rows = iris_data[0].head(3)
    args = ["serve", str(iris_bundle), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with https_server(args, cert, tmp_path / "serve.log", {}) as url:
        answer = httpx.post(
            f"{url}/v1/models/iris/predict",
            json={"instances": rows.to_dict("records")},
            verify=trusting(cert),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == iris_model.predict(rows).tolist()


def test_a_wrong_or_half_pair_is_refused_at_startup(
    dev_pair: tuple[Path, Path], tmp_path: Path, iris_bundle: Path
) -> None:
    cert, key = dev_pair
    other = tmp_path / "other"
    assert ferry("certs", "dev", "--out", str(other)).returncode == 0
    wrong = ferry(
        "serve", str(iris_bundle), "--ssl-certfile", str(cert), "--ssl-keyfile",
        str(other / "dev-key.pem"), "--port", str(free_port()),
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "cannot use" in wrong.stderr
    half = ferry("server", "--ssl-certfile", str(cert), "--port", str(free_port()))
    assert half.returncode == 2
    assert "--ssl-keyfile" in half.stderr
