"""Issue 14: logging as documented, on a real ``ferry server`` (two workers, auth on).

With ``FERRY_LOG_FORMAT=json`` every line it writes while serving, uploading and failing is
JSON (uvicorn's lines, the banner and the access lines too); request lines carry the request
id, model and version; no API key and no request body value appears; ``FERRY_LOG_LEVEL``
takes effect; the console format shows the same ``extra=`` fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferry.model
from ferry.client import Client
from ferry.config.settings import Settings
from ferry.registry import Registry
from ferry.security.keys import KeyStore
from tests.integration.conftest import free_port, stop_server, wait_ready

pytestmark = pytest.mark.integration

# what a caller sends, none of which may reach the log (distinctive so a hit is no accident)
ROW = {
    "sepal_length": 5.0123456789,
    "sepal_width": 3.0987654321,
    "petal_length": 1.4142135623,
    "petal_width": 0.2718281828,
}
BAD_VALUE = "customer-ssn-123"
DESCRIPTION = "upload-description-7f3a9c"
WRONG_KEY = "fry_0123456789abcdef_not-a-real-key-but-still-a-secret"
# FERRY_* settings of the machine running the tests stay out of the servers started here
ISOLATED_PREFIXES = ("FERRY_",)


@dataclass
class Site:
    """A registry home: ``iris``; ``broken``, whose model file the artifact store lost; a key."""

    home: Path
    key: str
    bundle: Path
    secrets: list[str] = field(default_factory=list)

    def env(self, **settings: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
        return {**inherited, "FERRY_HOME": str(self.home), "NO_COLOR": "1", **settings}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    iris_bundle: Path,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> Site:
    root = tmp_path_factory.mktemp("logging")
    X, y = iris_data
    broken_bundle = root / "broken"
    # fitted differently from iris, so it shares no artifact blob with it
    ferry.model.save(
        LogisticRegression(C=0.01, max_iter=1000).fit(X, y),
        broken_bundle,
        example=X.head(4),
        name="broken",
    )
    home = root / "home"
    settings = Settings(home=home)
    with Registry.from_settings(settings) as registry:
        registry.register(iris_bundle, "iris")
        record = registry.register(broken_bundle, "broken")
    # the storage lost the model's file: loading it fails on the server's side, honestly
    model_file = next(f for f in record.files if f.path.startswith("model/"))
    blob = home / "artifacts" / "sha256" / model_file.sha256[:2] / model_file.sha256
    assert blob.is_file(), blob
    blob.unlink()
    store = KeyStore.from_settings(settings)
    try:
        key = store.create("admin", ("admin",)).token
    finally:
        store.database.close()
    return Site(home, key, iris_bundle, secrets=[key, WRONG_KEY, BAD_VALUE, DESCRIPTION])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def stop(self) -> tuple[list[str], list[str]]:
        """SIGTERM (so the shutdown lines are written too); stdout's and stderr's lines."""
        stop_server(self.process)
        return self.stdout.read_text().splitlines(), self.stderr.read_text().splitlines()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    running: list[Server] = []

    def start_server(env: dict[str, str], *args: str) -> Server:
        port = free_port()
        out, err = tmp_path / f"out-{len(running)}", tmp_path / f"err-{len(running)}"
        command = [sys.executable, "-m", "ferry", "server", *args, "--port", str(port)]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - our own CLI
                command, stdout=stdout, stderr=stderr, env=env
            )
        server = Server(f"http://127.0.0.1:{port}", process, out, err)
        running.append(server)
        wait_ready(server.url, process, err)
        return server

    yield start_server
    for server in running:
        if server.process.poll() is None:
            stop_server(server.process)


def _traffic(server: Server, site: Site, upload_as: str) -> dict[str, httpx.Response]:
    """Predictions in three protocols, failures (the caller's, and the server's), and an
    upload of a new model ``upload_as`` with the python client."""
    bearer = {"authorization": f"Bearer {site.key}"}
    api_key = {"x-api-key": site.key}
    v2_inputs = [
        {"name": column, "shape": [1], "datatype": "FP64", "data": [value]}
        for column, value in ROW.items()
    ]
    calls: dict[str, tuple[str, dict[str, object], dict[str, str]]] = {
        "native": ("/v1/models/iris/predict", {"instances": [ROW]}, bearer),
        "mlflow": ("/mlflow/iris/invocations", {"dataframe_records": [ROW]}, api_key),
        "v2": ("/v2/models/iris/infer", {"inputs": v2_inputs}, bearer),
        "bad_input": (
            "/v1/models/iris/predict",
            {"instances": [{**ROW, "sepal_length": BAD_VALUE}]},
            bearer,
        ),
        "unknown_model": ("/v1/models/nope/predict", {"instances": [ROW]}, bearer),
        "wrong_key": (
            "/v1/models/iris/predict",
            {"instances": [ROW]},
            {"authorization": f"Bearer {WRONG_KEY}"},
        ),
        "server_fault": ("/v1/models/broken/predict", {"instances": [ROW]}, bearer),
    }
    answers = {
        what: httpx.post(server.url + path, json=body, headers=headers, timeout=60)
        for what, (path, body, headers) in calls.items()
    }
    with Client(server.url, site.key) as client:
        uploaded = client.register(site.bundle, upload_as, description=DESCRIPTION)
    assert (uploaded.version, uploaded.created) == (1, True)
    answers["upload_check"] = httpx.get(
        f"{server.url}/api/v1/models/{upload_as}/versions/1", headers=bearer, timeout=30
    )
    expected = {
        "native": 200,
        "mlflow": 200,
        "v2": 200,
        "bad_input": 422,
        "unknown_model": 404,
        "wrong_key": 401,
        "upload_check": 200,
    }
    for what, status in expected.items():
        assert answers[what].status_code == status, (what, answers[what].text)
    assert answers["server_fault"].status_code >= 500, answers["server_fault"].text
    return answers


def _records(lines: list[str]) -> list[dict[str, object]]:
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


def _access_line(records: list[dict[str, object]], answer: httpx.Response) -> dict[str, object]:
    request_id = answer.headers["x-request-id"]
    lines = [r for r in records if r["logger"] == "ferry.access" and r["request_id"] == request_id]
    assert len(lines) == 1, (answer.request.url, lines)
    return lines[0]


def test_json_lines_only_with_request_context_and_no_secrets(site: Site, start: Callable) -> None:
    env = site.env(FERRY_LOG_FORMAT="json", FERRY_LOG_LEVEL="INFO", FERRY_ACCESS_LOG_SAMPLE="1")
    server = start(env, "--auth", "--workers", "2")
    answers = _traffic(server, site, "uploaded")
    stdout, stderr = server.stop()

    records = _records(stdout) + _records(stderr)
    loggers = {str(r["logger"]) for r in records}
    # uvicorn's own lines and the banner went through the same formatter
    assert {"uvicorn.error", "ferry.cli", "ferry.access"} <= loggers, loggers
    assert any("Ferry server on" in str(r["message"]) for r in records)
    # every line has the request context fields; each request's access line names its model
    for record in records:
        assert {"request_id", "model", "version"} <= record.keys(), record
    served = {
        "native": ("iris", "1", 200),
        "mlflow": ("iris", "1", 200),
        "v2": ("iris", "1", 200),
        "bad_input": ("iris", "1", 422),
        "unknown_model": ("nope", "-", 404),
        "upload_check": ("uploaded", "1", 200),
    }
    for what, (model, version, status) in served.items():
        line = _access_line(records, answers[what])
        assert (line["model"], line["version"], line["status"]) == (model, version, status), what
        assert line["method"] in {"GET", "POST"}
        assert isinstance(line["duration_ms"], float)
    assert _access_line(records, answers["wrong_key"])["status"] == 401
    # the upload: its request line and the registry's own line name the new version
    upload_lines = [
        r
        for r in records
        if r["logger"] == "ferry.access" and r["path"] == "/api/v1/models/uploaded/versions"
    ]
    assert [(r["status"], r["model"], r["version"]) for r in upload_lines] == [
        (201, "uploaded", "1")
    ]
    registered = [r for r in records if r["message"] == "version registered"]
    assert [(r["model"], r["version"]) for r in registered] == [("uploaded", "1")]
    assert registered[0]["request_id"] == upload_lines[0]["request_id"]
    # the server's fault: a fixed answer naming the request id, the cause in the log under it
    fault = answers["server_fault"]
    fault_id = fault.headers["x-request-id"]
    body = fault.json()["error"]
    assert fault_id in body["message"]
    assert str(site.home) not in fault.text
    assert "sha256" not in fault.text
    fault_lines = [r for r in records if r["request_id"] == fault_id]
    causes = [r for r in fault_lines if r["level"] == "ERROR" and r["logger"] != "ferry.access"]
    assert causes, fault_lines
    assert "missing from the artifact store" in str(causes[0]["message"])
    assert "Traceback" in str(causes[0]["exc"])
    for line in fault_lines:
        assert (line["model"], line["version"]) == ("broken", "1"), line
    # credentials and what callers sent never reach the log
    text = "\n".join(stdout + stderr)
    for secret in [*site.secrets, *(str(value) for value in ROW.values())]:
        assert secret not in text, secret


def test_log_level_takes_effect(site: Site, start: Callable[..., Server]) -> None:
    env = site.env(FERRY_LOG_FORMAT="json", FERRY_LOG_LEVEL="WARNING", FERRY_ACCESS_LOG_SAMPLE="1")
    server = start(env, "--auth", "--workers", "1")
    bearer = {"authorization": f"Bearer {site.key}"}
    ok = httpx.post(
        f"{server.url}/v1/models/iris/predict",
        json={"instances": [ROW]},
        headers=bearer,
        timeout=60,
    )
    missing = httpx.post(
        f"{server.url}/v1/models/nope/predict",
        json={"instances": [ROW]},
        headers=bearer,
        timeout=60,
    )
    fault = httpx.post(
        f"{server.url}/v1/models/broken/predict",
        json={"instances": [ROW]},
        headers=bearer,
        timeout=60,
    )
    assert (ok.status_code, missing.status_code) == (200, 404)
    assert fault.status_code >= 500
    stdout, stderr = server.stop()
    records = _records(stdout) + _records(stderr)
    assert {r["level"] for r in records} <= {"WARNING", "ERROR", "CRITICAL"}, records
    # the 5xx is logged (its access line at ERROR), the 200 and 404 lines (INFO) are not
    assert _access_line(records, fault)["level"] == "ERROR"
    ids = {r["request_id"] for r in records}
    assert ok.headers["x-request-id"] not in ids
    assert missing.headers["x-request-id"] not in ids


def test_console_lines_show_extra_fields(site: Site, start: Callable[..., Server]) -> None:
    env = site.env(FERRY_LOG_FORMAT="console", FERRY_LOG_LEVEL="DEBUG", FERRY_ACCESS_LOG_SAMPLE="1")
    server = start(env, "--auth", "--workers", "1")
    answers = _traffic(server, site, "uploaded-console")
    stdout, stderr = server.stop()
    text = "\n".join(stdout + stderr)
    assert "Ferry server on" in text  # the banner, printed as text in this format
    native = answers["native"].headers["x-request-id"]
    line = next(x for x in stderr if "ferry.access" in x and native in x)
    # the request context, then the access line's extra= fields as key=value
    assert f"[{native} iris:1]" in line
    for pair in ("method=POST", "path=/v1/models/iris/predict", "status=200", "duration_ms="):
        assert pair in line, line
    assert any("version registered" in x and "sha256=" in x for x in stderr)
    assert any(" DEBUG " in x for x in stderr)  # FERRY_LOG_LEVEL=DEBUG took effect
    for secret in [*site.secrets, *(str(value) for value in ROW.values())]:
        assert secret not in text, secret
