"""The registry's own history names who did each write through the HTTP control plane: on a real
``ferry server --auth`` over SQLite and over PostgreSQL + S3, a key's uploads, alias moves, tags
and deletions are recorded with the key's principal (its id), a JWT caller's with
``jwt:<subject>``; build jobs record who started them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from ferry.client import Client
from ferry.config.settings import Settings
from ferry.registry import Registry
from ferry.security.keys import KeyStore, NewKey
from tests.integration.security.conftest import Home, StartServer
from tests.registry_fixtures import Backend

pytestmark = pytest.mark.integration

SECRET = "hs256-shared-secret-for-the-actor-test-0123"
REGISTRY_ACTIONS = ("model.", "version.", "alias.")  # the registry's rows, not http.write ones


def jwt_token(subject: str, scope: str) -> str:
    claims = {"sub": subject, "exp": int(time.time()) + 600, "scope": scope}
    return jwt.encode(claims, SECRET, algorithm="HS256")


class Keys:
    """API keys in the backend's own database (the one the server reads)."""

    def __init__(self, home: Path, backend: Backend) -> None:
        self.store = KeyStore.from_settings(Settings(home=home, database_url=backend.database_url))

    def create(self, name: str, *scopes: str) -> NewKey:
        return self.store.create(name, scopes)


@pytest.fixture
def keys(tmp_path: Path, registry: Registry, registry_backend: Backend) -> Iterator[Keys]:
    # ``registry`` migrated the backend's database: the key tables exist
    made = Keys(tmp_path / "home", registry_backend)
    yield made
    made.store.database.close()


def test_registry_history_names_the_caller(
    tmp_path: Path,
    registry: Registry,
    registry_backend: Backend,
    keys: Keys,
    start_server: StartServer,
    iris_bundle: Path,
) -> None:
    home = Home(tmp_path / "home")
    url = start_server(
        home, "--auth", "--workers", "1", FERRY_JWT_SECRET=SECRET, **registry_backend.ferry_env
    )
    ci = keys.create("ci", "publish:*")
    admin = keys.create("admin", "admin")
    bot = jwt_token("release-bot", "publish:fraud")
    with Client(url, api_key=ci.token) as client:
        version = client.register(iris_bundle, "fraud", alias="staging")
        assert version.created_by == ci.record.id
        client.set_alias("fraud", "production", version.version)
        client.tag_version("fraud", version.version, {"team": "risk"})
        client.delete_alias("fraud", "staging")
    with Client(url, api_key=bot) as client:
        client.set_alias("fraud", "canary", version.version)
        client.log_metrics("fraud", version.version, {"auc": 0.91})
        assert [m.actor for m in client.alias_history("fraud", "staging")] == [ci.record.id] * 2
        assert client.alias("fraud", "canary").updated_by == "jwt:release-bot"
    with Client(url, api_key=admin.token) as client:
        rows = client.audit(limit=1000).items
    history = {
        (row.action, row.target): row.actor
        for row in rows
        if row.action.startswith(REGISTRY_ACTIONS) and row.target.startswith("fraud")
    }
    assert history == {
        ("model.create", "fraud"): ci.record.id,
        ("version.create", "fraud/1"): ci.record.id,
        ("alias.set", "fraud@staging"): ci.record.id,
        ("alias.set", "fraud@production"): ci.record.id,
        ("version.tags", "fraud/1"): ci.record.id,
        ("alias.delete", "fraud@staging"): ci.record.id,
        ("alias.set", "fraud@canary"): "jwt:release-bot",
        ("version.metrics", "fraud/1"): "jwt:release-bot",
    }
    # the same rows read from the registry's tables directly
    direct = {(e.action, e.target): e.actor for e in registry.audit(limit=1000)}
    assert {k: direct[k] for k in history} == history


def test_a_build_records_who_started_it(
    tmp_path: Path,
    registry: Registry,
    registry_backend: Backend,
    keys: Keys,
    start_server: StartServer,
    iris_bundle: Path,
) -> None:
    registry.register(iris_bundle, "fraud")
    home = Home(tmp_path / "home")
    url = start_server(home, "--auth", "--workers", "1", **registry_backend.ferry_env)
    ci = keys.create("ci", "publish:fraud")
    builds = f"{url}/api/v1/models/fraud/versions/1/builds"
    headers = {"authorization": f"Bearer {ci.token}"}
    # a base image that exists nowhere: the build fails at once, after it was recorded
    body = {"builder": "podman", "base": "localhost/ferry-test/no-such-base:0"}
    started = httpx.post(builds, json=body, headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    assert started.json()["actor"] == ci.record.id
    deadline = time.monotonic() + 120
    while True:
        build = httpx.get(f"{builds}/{started.json()['id']}", headers=headers, timeout=10).json()
        if build["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, build
        time.sleep(0.5)
    assert build["status"] == "failed"
    assert build["actor"] == ci.record.id
