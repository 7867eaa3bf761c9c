"""Alias routes: set, move, get, list, delete, history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.server.control.harness import API, Control


@pytest.fixture
def two(control: Control, iris_variants: list[Path]) -> Control:
    control.registry.register(iris_variants[0], "iris")
    control.registry.register(iris_variants[1], "iris")
    return control


def test_set_move_delete_with_history(two: Control) -> None:
    url = f"{API}/models/iris/aliases/production"
    created = two.http.put(url, json={"version": 1})
    assert created.status_code == 200
    assert created.json()["version"] == 1
    assert created.json()["updated_by"] == "anonymous"
    assert two.http.get(url).json()["version"] == 1

    moved = two.http.put(url, json={"version": 2})
    assert moved.json()["version"] == 2
    assert two.registry.resolve("iris@production").version == 2
    assert two.http.get(f"{API}/models/iris").json()["aliases"] == {"production": 2}
    assert two.http.get(f"{API}/models/iris/versions/2").json()["aliases"] == ["production"]

    two.http.put(f"{API}/models/iris/aliases/staging", json={"version": 1})
    listing = two.http.get(f"{API}/models/iris/aliases").json()
    assert [(a["alias"], a["version"]) for a in listing["items"]] == [
        ("production", 2),
        ("staging", 1),
    ]
    assert listing["total"] == 2

    assert two.http.delete(url).status_code == 204
    gone = two.http.get(url)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "alias_not_found"

    history = two.http.get(f"{url}/history").json()
    moves = [(e["old_version"], e["new_version"]) for e in history["items"]]
    assert moves == [(None, 1), (1, 2), (2, None)]
    assert history["total"] == 3
    page = two.http.get(f"{url}/history", params={"limit": 1, "offset": 1}).json()
    assert [(e["old_version"], e["new_version"]) for e in page["items"]] == [(1, 2)]


def test_setting_the_same_version_again_changes_nothing(two: Control) -> None:
    url = f"{API}/models/iris/aliases/production"
    two.http.put(url, json={"version": 1})
    before = two.snapshot()
    assert two.http.put(url, json={"version": 1}).json()["version"] == 1
    assert two.snapshot() == before
