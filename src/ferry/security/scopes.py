"""Scopes: what a key or token may do (``read``, ``predict``, ``publish``, ``trust``,
``admin``), each optionally limited to model names by a glob (``predict:iris``,
``publish:fraud-*``).

``admin`` grants everything; ``publish`` on a model also grants ``read`` on it (a publisher
sees what it writes). ``trust`` grants only the decision to run a model's own code on the
server (registering a code model or a pickle the scanner refuses, making a code model public):
it is kept apart from ``publish`` so that the key a CI pipeline publishes with cannot vouch for
code, and it is used together with ``publish`` (the upload route itself needs ``publish``). A
requirement without a model (listing every model, creating a model named in the body) is met
only by a scope whose glob is ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from ferry.errors import InvalidRequest


class Action(StrEnum):
    READ = "read"
    PREDICT = "predict"
    PUBLISH = "publish"
    TRUST = "trust"
    ADMIN = "admin"


# what each action also grants, besides itself
_IMPLIES: dict[Action, frozenset[Action]] = {
    Action.READ: frozenset({Action.READ}),
    Action.PREDICT: frozenset({Action.PREDICT}),
    Action.PUBLISH: frozenset({Action.PUBLISH, Action.READ}),
    Action.TRUST: frozenset({Action.TRUST}),
    Action.ADMIN: frozenset(Action),
}
MAX_GLOB = 128


@dataclass(frozen=True, slots=True)
class Scope:
    action: Action
    models: str = "*"  # a glob over model names

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``predict``, ``predict:iris``, ``publish:fraud-*``; raises InvalidRequest."""
        action, _, models = text.strip().partition(":")
        try:
            parsed = Action(action.strip().lower())
        except ValueError:
            known = ", ".join(a.value for a in Action)
            raise InvalidRequest(
                f"scope {text!r}: unknown action {action!r} (known: {known})", field="scope"
            ) from None
        models = models.strip() or "*"
        if len(models) > MAX_GLOB or any(c.isspace() for c in models):
            raise InvalidRequest(f"scope {text!r}: bad model glob {models!r}", field="scope")
        return cls(parsed, models)

    def __str__(self) -> str:
        return self.action.value if self.models == "*" else f"{self.action.value}:{self.models}"

    def grants(self, action: Action, model: str | None) -> bool:
        if action not in _IMPLIES[self.action]:
            return False
        if self.models == "*":
            return True
        return model is not None and fnmatchcase(model, self.models)


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a request needs: any one of ``actions`` on ``model`` (None: on every model)."""

    actions: tuple[Action, ...]
    model: str | None = None

    def __str__(self) -> str:
        target = f":{self.model}" if self.model is not None else ""
        return " or ".join(f"{a.value}{target}" for a in self.actions)


def parse_scopes(texts: list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    scopes = tuple(Scope.parse(t) for t in texts if t.strip())
    if not scopes:
        raise InvalidRequest("give at least one scope, e.g. predict:iris", field="scope")
    return scopes


def allows(scopes: tuple[Scope, ...], requirement: Requirement) -> bool:
    return any(
        scope.grants(action, requirement.model)
        for scope in scopes
        for action in requirement.actions
    )


def model_of(ref: str) -> str:
    """``iris@production`` or ``iris:3`` -> ``iris``: scopes are per model, not per version."""
    return ref.split("@", 1)[0].split(":", 1)[0]
