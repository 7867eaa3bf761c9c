"""Scopes: parsing, globs over model names, and what each action implies."""

from __future__ import annotations

import pytest

from ferry.errors import InvalidRequest
from ferry.security.scopes import Action, Requirement, Scope, allows, model_of, parse_scopes


@pytest.mark.parametrize(
    ("text", "action", "models"),
    [
        ("predict", Action.PREDICT, "*"),
        ("predict:iris", Action.PREDICT, "iris"),
        ("publish:*", Action.PUBLISH, "*"),
        ("READ:fraud-*", Action.READ, "fraud-*"),
        ("trust:team-*", Action.TRUST, "team-*"),
        (" admin ", Action.ADMIN, "*"),
    ],
)
def test_parse(text: str, action: Action, models: str) -> None:
    scope = Scope.parse(text)
    assert (scope.action, scope.models) == (action, models)
    assert Scope.parse(str(scope)) == scope


@pytest.mark.parametrize("text", ["write:iris", "", "predict:a b", "root"])
def test_bad_scopes_name_the_field(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_scopes([text]) if text else parse_scopes([])
    assert caught.value.details["field"] == "scope"


@pytest.mark.parametrize(
    ("scopes", "actions", "model", "allowed"),
    [
        (["predict:iris"], (Action.PREDICT,), "iris", True),
        (["predict:iris"], (Action.PREDICT,), "wine", False),
        (["predict:iris"], (Action.READ,), "iris", False),
        (["predict:fraud-*"], (Action.PREDICT,), "fraud-eu", True),
        (["predict:fraud-*"], (Action.PREDICT,), "fraud", False),
        (["predict:iris"], (Action.PREDICT,), None, False),  # every model: needs the * glob
        (["predict"], (Action.PREDICT,), None, True),
        (["publish:iris"], (Action.READ,), "iris", True),  # a publisher reads what it writes
        (["publish:iris"], (Action.PREDICT,), "iris", False),
        (["read"], (Action.PUBLISH,), "iris", False),
        (["admin"], (Action.PUBLISH,), "anything", True),
        (["admin:iris"], (Action.ADMIN,), None, False),
        (["read:iris", "predict:wine"], (Action.READ, Action.PREDICT), "wine", True),
        # trusting code is its own decision: publish does not grant it, admin does
        (["publish"], (Action.TRUST,), "iris", False),
        (["publish:team-*", "read"], (Action.TRUST,), "team-a", False),
        (["trust:team-*"], (Action.TRUST,), "team-a", True),
        (["trust:team-*"], (Action.TRUST,), "other", False),
        (["trust"], (Action.PUBLISH,), "iris", False),
        (["trust"], (Action.READ,), "iris", False),
        (["admin"], (Action.TRUST,), "iris", True),
        (["admin:iris"], (Action.TRUST,), "iris", True),
    ],
)
def test_allows(
    scopes: list[str], actions: tuple[Action, ...], model: str | None, allowed: bool
) -> None:
    assert allows(parse_scopes(scopes), Requirement(actions, model)) is allowed


@pytest.mark.parametrize(
    ("ref", "model"), [("iris", "iris"), ("iris@production", "iris"), ("iris:3", "iris")]
)
def test_model_of(ref: str, model: str) -> None:
    assert model_of(ref) == model
