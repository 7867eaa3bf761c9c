"""schemathesis (v4) over a live server's OpenAPI document, through its engine: the phases
``st run`` runs (examples, coverage, fuzzing, stateful), both generation modes, bounded
examples. What it found comes back as text, so a test asserts it is empty and shows it if not.

schemathesis' pytest integration (``schemathesis.pytest.from_fixture``) does not run under
pytest 9 (``'Function' object has no attribute '_nodeid'``), hence the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import schemathesis
from schemathesis import engine
from schemathesis.engine import Status, events
from schemathesis.engine.recorder import ScenarioRecorder

# operations that change or remove what the other operations read; with a real model's name
# they would delete the model (or its aliases, or start an image build with podman) half-way
# through the run, and the cases after would only meet 404s. They are fuzzed too, with
# generated names only (``destructive=True``)
DESTRUCTIVE = r"^(DELETE|PUT|PATCH) |^POST .*/builds$"

# no 5xx; and every status and content type answered is one the document declares
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance")


@dataclass(slots=True)
class Findings:
    """Failed checks and engine errors (a schema it could not use counts), per operation."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tested: set[str] = field(default_factory=set)
    cases: int = 0


def fuzz(
    base_url: str,
    document: str,
    *,
    names: list[str],
    destructive: bool = False,
    checks: tuple[str, ...] = CHECKS,
    max_examples: int = 12,
    headers: dict[str, str] | None = None,
) -> Findings:
    """Run schemathesis over ``base_url + document`` against ``base_url``.

    By default over every operation but the destructive ones, where a ``name`` path parameter
    is one of ``names`` half of the time and a ``version`` one is ``1`` half of the time, so the
    cases reach the models, not only the 404 of an unknown name. With ``destructive``, over
    the destructive operations only, with generated names. ``headers`` go with every request
    (and the document's own one): an API key, say."""
    config: dict[str, object] = {
        "base-url": base_url,
        "generation": {"mode": "all", "max-examples": max_examples},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
    }
    if headers:
        config["headers"] = headers
    if names and not destructive:
        config["dictionaries"] = {"models": {"values": names}, "versions": {"values": ["1"]}}
        config["parameters"] = {
            "name": {"dictionary": "models", "probability": 0.5},
            "version": {"dictionary": "versions", "probability": 0.5},
        }
    schema = schemathesis.openapi.from_url(
        base_url + document, config=schemathesis.Config.from_dict(config), headers=headers or {}
    )
    if destructive:
        schema = schema.include(name_regex=DESTRUCTIVE)
    else:
        schema = schema.exclude(name_regex=DESTRUCTIVE)
    found = Findings()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            found.cases += len(event.recorder.cases)
            if event.label is not None and event.status is not Status.SKIP:
                found.tested.add(event.label)
            found.failures.extend(_failures(event.label, event.recorder))
        elif isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            found.errors.append(f"engine: {event.exception!r}")
    return found


def operations(document: dict[str, object], *, destructive: bool = False) -> set[str]:
    """The labels (``METHOD /path``) of the operations one ``fuzz`` run is meant to test."""
    paths = document["paths"]
    assert isinstance(paths, dict)
    labels = {
        f"{method.upper()} {path}"
        for path, ops in paths.items()
        for method in ops
        if method in ("get", "put", "post", "delete", "patch")
    }
    chosen = {label for label in labels if re.search(DESTRUCTIVE, label)}
    return chosen if destructive else labels - chosen


def _failures(label: str | None, recorder: ScenarioRecorder) -> list[str]:
    found = []
    for checks in recorder.checks.values():
        for check in checks:
            if check.status is Status.FAILURE and check.failure_info is not None:
                info = check.failure_info
                reproduce = info.steps[-1].curl if info.steps else info.code_sample
                found.append(f"{label}: {check.name}: {info.failure.title}\n    {reproduce}")
    return found
