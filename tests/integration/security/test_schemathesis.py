"""Schemathesis over the control plane's OpenAPI (``/openapi.json`` of ``ferry server``) with
a key that may only read: no generated request writes anything (every write answers 403 and
the registry, keys and audit log show no write), and nothing answers 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def test_no_write_without_scope_and_no_5xx(
    home: Home, start_server: StartServer, tmp_path: Path
) -> None:
    url = start_server(home, "--auth", "--workers", "1")
    reader = home.key("reader", "read")
    admin = {"x-api-key": home.key("admin", "admin")}
    before = httpx.get(f"{url}/api/v1/models", headers=admin).json()["items"]
    har = tmp_path / "run.har"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {reader}",
        "--include-path-regex",
        "^/api/v1/",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "5",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-shrink",
        "--seed",
        "6",
        "--request-timeout",
        "30",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    ]
    run = subprocess.run(  # noqa: S603 - a dev tool from our venv
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=home.env,
        cwd=tmp_path,
    )
    entries = json.loads(har.read_text())["log"]["entries"]
    answers = [
        (e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in entries
    ]
    assert run.returncode == 0, run.stdout[-6000:]
    print(f"schemathesis: {len(answers)} requests")
    writes = [a for a in answers if a[0] in WRITES]
    operations = {(m, u.split("?")[0]) for m, u, _ in writes}
    assert len(writes) >= 20, answers  # it did try to write, to many operations
    assert len(operations) >= 8, operations
    assert [a for a in writes if a[2] != 403] == []
    assert [a for a in answers if a[2] >= 500] == []
    assert any(a[0] == "GET" and a[2] == 200 for a in answers)  # reads did reach handlers
    assert httpx.get(f"{url}/api/v1/models", headers=admin).json()["items"] == before
    keys = httpx.get(f"{url}/api/v1/keys", headers=admin).json()["items"]
    assert {k["name"] for k in keys} == {"reader", "admin"}
    audit = httpx.get(f"{url}/api/v1/audit", params={"limit": 1000}, headers=admin).json()
    assert not [e for e in audit["items"] if e["action"] == "http.write"]
