"""Trust decisions: only the ``trust`` scope (or admin) vouches for code, publish never; the
decision's record; the server's trust tags; public=true on a model that holds code."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.config.settings import Settings
from ferry.errors import Forbidden, InvalidRequest
from ferry.model.kinds import ModelKind
from ferry.registry import Registry
from ferry.security.identity import Principal
from ferry.security.scopes import parse_scopes
from ferry.security.trust import (
    CODE_TAG,
    TRUSTED_BY_TAG,
    check_may_make_public,
    check_version_tags,
    decide_trust,
    is_code_version,
    is_trusted_version,
    model_has_code,
)

CODE = ModelKind(("predictor.py:Model is a Python class",))


def key(*scopes: str) -> Principal:
    return Principal(id="k1", name="ci", kind="key", scopes=parse_scopes(list(scopes)))


@pytest.mark.parametrize("scopes", [["publish:team-a"], ["publish", "read", "predict"]])
def test_publish_cannot_trust(scopes: list[str]) -> None:
    with pytest.raises(Forbidden) as refused:
        decide_trust(key(*scopes), "team-a")
    assert refused.value.details == {"field": "trust", "required": "trust:team-a"}
    assert "publish does not grant it" in refused.value.message


def test_the_trust_scope_decides_and_says_which_scope() -> None:
    decision = decide_trust(key("publish:team-*", "trust:team-*"), "team-a")
    assert (decision.by, decision.name, decision.kind, decision.scope) == (
        "k1",
        "ci",
        "key",
        "trust:team-*",
    )
    scan = {"verdict": "trusted", "unsafe_globals": ["fractions.Fraction"]}
    assert decision.audit(CODE, scan, public=True) == {
        "by": "k1",
        "name": "ci",
        "kind": "key",
        "scope": "trust:team-*",
        "code": ["predictor.py:Model is a Python class"],
        "pickle_verdict": "trusted",
        "unsafe_globals": ["fractions.Fraction"],
        "public": True,
    }
    assert decision.tags(CODE) == {
        TRUSTED_BY_TAG: "k1",
        CODE_TAG: "predictor.py:Model is a Python class",
    }
    assert decision.tags(ModelKind()) == {TRUSTED_BY_TAG: "k1"}  # a trusted pickle, not code
    with pytest.raises(Forbidden):
        decide_trust(key("trust:team-*"), "other")
    assert decide_trust(key("admin"), "other").scope == "admin"


def test_auth_off_is_the_local_operator() -> None:
    decision = decide_trust(None, "iris")
    assert (decision.by, decision.scope) == ("local", "")


@pytest.mark.parametrize("tag", [TRUSTED_BY_TAG, CODE_TAG])
def test_callers_cannot_send_the_trust_tags(tag: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_version_tags({"team": "ds", tag: "k1"}, "metadata.tags")
    assert refused.value.details == {"field": "metadata.tags", "key": tag}
    check_version_tags({"team": "ds", "ferry.autobuild": "true"})


@pytest.fixture
def registry(tmp_path: Path, iris_bundle: Path) -> Iterator[Registry]:
    with Registry.from_settings(Settings(home=tmp_path / "home")) as registry:
        registry.register(iris_bundle, "data")
        registry.register(iris_bundle, "code", tags={CODE_TAG: "a Python class"})
        yield registry


def test_code_versions_by_tag_or_by_manifest(registry: Registry) -> None:
    data = registry.get_version("data", 1)
    assert not is_code_version(data)
    assert is_code_version(registry.get_version("code", 1))
    custom = data.manifest.model_copy(update={"flavor": "custom"})
    assert is_code_version(dataclasses.replace(data, manifest=custom))
    pyfunc = data.manifest.model_copy(
        update={"flavor": "mlflow", "flavor_options": {"inner": "python_function"}}
    )
    assert is_code_version(dataclasses.replace(data, manifest=pyfunc))
    native = data.manifest.model_copy(
        update={"flavor": "mlflow", "flavor_options": {"inner": "sklearn"}}
    )
    assert not is_code_version(dataclasses.replace(data, manifest=native))
    assert not is_trusted_version(registry.get_version("code", 1))
    trusted = registry.set_tags("code", 1, {TRUSTED_BY_TAG: "k1"})
    assert is_trusted_version(trusted)
    assert model_has_code(registry, "code")
    assert not model_has_code(registry, "data")


def test_public_on_a_code_model_needs_trust(registry: Registry) -> None:
    public = {"public": "true", "team": "ds"}
    publisher = key("publish")
    with pytest.raises(Forbidden) as refused:
        check_may_make_public(publisher, registry, "code", public)
    assert refused.value.details == {"field": "tags.public", "required": "trust:code"}
    check_may_make_public(publisher, registry, "code", {"public": "false"})
    check_may_make_public(publisher, registry, "data", public)  # data: publish is enough
    check_may_make_public(key("publish", "trust:code"), registry, "code", public)
    check_may_make_public(None, registry, "code", public)  # auth off
    registry.update_model("code", tags={"public": "TRUE"})
    # already public (by someone who could): its publishers may still edit its tags
    check_may_make_public(publisher, registry, "code", public)
