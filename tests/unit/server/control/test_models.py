"""Model routes and the audit log, over a real registry."""

from __future__ import annotations

from pathlib import Path

from tests.unit.server.control.harness import API, Control


def test_create_get_update_delete(control: Control) -> None:
    created = control.http.post(
        f"{API}/models", json={"name": "iris", "description": "flowers", "tags": {"team": "ds"}}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "iris"
    assert body["description"] == "flowers"
    assert body["tags"] == {"team": "ds"}
    assert body["latest_version"] is None
    assert body["aliases"] == {}

    got = control.http.get(f"{API}/models/iris")
    assert got.status_code == 200
    assert got.json() == body

    patched = control.http.patch(f"{API}/models/iris", json={"tags": {"team": "ml"}})
    assert patched.status_code == 200
    assert patched.json()["tags"] == {"team": "ml"}
    assert patched.json()["description"] == "flowers"  # left alone
    assert control.registry.get_model("iris").tags == {"team": "ml"}

    deleted = control.http.delete(f"{API}/models/iris")
    assert deleted.status_code == 204
    assert deleted.content == b""
    missing = control.http.get(f"{API}/models/iris")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_list_filters_and_pages(control: Control, iris_bundle: Path) -> None:
    for name, team in (("iris", "ds"), ("iris-big", "ml"), ("wine", "ds")):
        control.registry.create_model(name, tags={"team": team})
    control.registry.register(iris_bundle, "iris")

    everything = control.http.get(f"{API}/models").json()
    assert [m["name"] for m in everything["items"]] == ["iris", "iris-big", "wine"]
    assert (everything["total"], everything["limit"], everything["offset"]) == (3, 100, 0)
    assert everything["items"][0]["latest_version"] == 1

    by_prefix = control.http.get(f"{API}/models", params={"prefix": "iris"}).json()
    assert [m["name"] for m in by_prefix["items"]] == ["iris", "iris-big"]
    by_tag = control.http.get(f"{API}/models", params={"tag": "team=ds"}).json()
    assert [m["name"] for m in by_tag["items"]] == ["iris", "wine"]
    assert by_tag["total"] == 2

    page = control.http.get(f"{API}/models", params={"limit": 1, "offset": 1}).json()
    assert [m["name"] for m in page["items"]] == ["iris-big"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)


def test_delete_removes_versions_and_aliases(control: Control, iris_bundle: Path) -> None:
    record = control.registry.register(iris_bundle, "iris")
    control.registry.set_alias("iris", "production", record.version)
    assert control.http.delete(f"{API}/models/iris").status_code == 204
    assert control.registry.metadata.row_counts()["versions"] == 0
    assert control.registry.metadata.row_counts()["aliases"] == 0
    again = control.http.delete(f"{API}/models/iris")
    assert again.status_code == 404


def test_audit_lists_every_write_newest_first(control: Control, iris_bundle: Path) -> None:
    control.http.post(f"{API}/models", json={"name": "iris"})
    control.registry.register(iris_bundle, "iris")
    control.http.put(f"{API}/models/iris/aliases/production", json={"version": 1})

    audit = control.http.get(f"{API}/audit").json()
    actions = [event["action"] for event in audit["items"]]
    assert actions[0] == "alias.set"
    assert "version.create" in actions
    assert actions[-1] == "model.create"
    assert audit["total"] == len(actions) == control.registry.metadata.row_counts()["audit_log"]
    assert audit["items"][0]["target"] == "iris@production"
    assert audit["items"][0]["actor"] == "anonymous"

    second = control.http.get(f"{API}/audit", params={"limit": 1, "offset": 1}).json()
    assert [e["id"] for e in second["items"]] == [audit["items"][1]["id"]]
    assert second["total"] == audit["total"]
