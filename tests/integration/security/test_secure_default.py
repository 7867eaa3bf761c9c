"""Secure by default: ``ferry server`` on a non-loopback address requires keys unless
``--insecure`` is given (with a loud warning); on loopback it is open unless ``--auth`` or
``FERRY_AUTH=required``; ``ferry keys create`` works on the local store with no server."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration


def test_public_address_turns_auth_on(home: Home, start_server: StartServer) -> None:
    url = start_server(home, "--host", "0.0.0.0", "--workers", "1")  # noqa: S104
    assert httpx.get(f"{url}/api/v1/models").status_code == 401
    created = home.ferry("keys", "create", "--name", "admin", "--scope", "admin", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    answer = httpx.get(f"{url}/api/v1/models", headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert {m["name"] for m in answer.json()["items"]} == {"iris", "open"}


def test_insecure_warns_loudly(home: Home, start_server: StartServer) -> None:
    url = start_server(home, "--host", "0.0.0.0", "--insecure", "--workers", "1")  # noqa: S104
    assert httpx.get(f"{url}/api/v1/models").status_code == 200
    logs = "".join(p.read_text() for p in home.path.parent.glob("server-*.log"))
    assert "WARNING: auth is OFF on 0.0.0.0" in logs


def test_loopback_is_open_unless_asked(home: Home, start_server: StartServer) -> None:
    open_url = start_server(home, "--workers", "1")
    assert httpx.get(f"{open_url}/api/v1/models").status_code == 200
    keyed = start_server(home, "--workers", "1", FERRY_AUTH="required")
    assert httpx.get(f"{keyed}/api/v1/models").status_code == 401


def test_auth_and_insecure_contradict(home: Home) -> None:
    result = home.ferry("server", "--auth", "--insecure", "--port", "1")
    assert result.returncode != 0
    assert "contradict" in result.stderr
