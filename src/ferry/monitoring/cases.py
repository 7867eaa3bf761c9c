"""Replaying logged requests, and keeping them as regression cases stored with the model.

A case is a logged request's inputs with the outputs a chosen version gave for them. It is
kept in the artifact store (``cases/<model>/<request_id>.json``; versions are immutable, and
cases outgrow a tag's 1000 characters) and listed by a model tag ``case:<request_id>`` that
names its key, so ``cases(registry, model)`` finds them and ``check_case`` replays one
against any version (what ``ferry check`` needs to run them).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ferry.errors import InvalidRequest
from ferry.model.example import Mismatch, compare_outputs, outputs_to_json
from ferry.model.validation import batch_from_columns
from ferry.monitoring.predlog.records import LoggedPrediction

if TYPE_CHECKING:
    from ferry.model.loaded import LoadedModel
    from ferry.registry import Registry

CASE_TAG_PREFIX = "case:"
CASE_KEY_PREFIX = "cases"


@dataclass(frozen=True, slots=True)
class Case:
    request_id: str
    model: str
    version: str  # the version whose outputs are expected
    inputs: dict[str, list[Any]]
    expected: dict[str, list[Any]]
    logged_version: str
    logged_outputs: dict[str, list[Any]] | None
    saved_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "inputs": self.inputs,
            "expected": self.expected,
            "logged_version": self.logged_version,
            "logged_outputs": self.logged_outputs,
            "saved_at": self.saved_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(**{name: data[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Replay:
    record: LoggedPrediction
    version: str
    outputs: dict[str, list[Any]]
    mismatches: list[Mismatch]  # logged outputs vs these

    @property
    def same(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.record.request_id,
            "model": self.record.model,
            "logged_version": self.record.version,
            "logged_outputs": self.record.outputs,
            "version": self.version,
            "outputs": self.outputs,
            "same": self.same,
            "mismatches": [
                {"output": m.output, "row": m.row, "logged": m.expected, "replayed": m.got}
                for m in self.mismatches
            ],
        }


def run_inputs(
    model: LoadedModel, inputs: dict[str, list[Any]], outputs: list[str]
) -> dict[str, list[Any]]:
    """The model's answer to logged input columns, for the outputs it has among ``outputs``."""
    batch = batch_from_columns(inputs, model.signature)
    known = [name for name in outputs if name in model.output_names] or ["predictions"]
    result: dict[str, list[Any]] = outputs_to_json(model.predict_outputs(batch, known))
    return result


def replay(record: LoggedPrediction, model: LoadedModel) -> Replay:
    """Re-run a logged request against ``model`` (any version) and compare with the log."""
    if not record.inputs:
        raise InvalidRequest(
            f"request {record.request_id!r} failed before its inputs were read "
            f"({record.status} {record.error_code}); there is nothing to replay",
            request_id=record.request_id,
        )
    logged = record.outputs or {}
    outputs = run_inputs(model, record.inputs, list(logged))
    mismatches = compare_outputs({k: v for k, v in logged.items() if k in outputs}, outputs)
    return Replay(record, model.version, outputs, mismatches)


def case_key(model: str, request_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in request_id)
    return f"{CASE_KEY_PREFIX}/{model}/{safe}.json"


def save_case(registry: Registry, result: Replay) -> Case:
    """Keep a replay as a regression case of its model: the inputs and this version's answer."""
    record = result.record
    assert record.inputs is not None  # a replay had inputs
    case = Case(
        request_id=record.request_id,
        model=record.model,
        version=result.version,
        inputs=record.inputs,
        expected=result.outputs,
        logged_version=record.version,
        logged_outputs=record.outputs,
        saved_at=datetime.now(UTC).isoformat(),
    )
    key = case_key(record.model, record.request_id)
    with tempfile.TemporaryDirectory(prefix="ferry-case-") as folder:
        path = Path(folder) / "case.json"
        path.write_bytes(orjson.dumps(case.to_json()))
        registry.artifacts.put(key, path)
    tags = dict(registry.get_model(record.model).tags)
    tags[f"{CASE_TAG_PREFIX}{record.request_id}"[:128]] = key
    registry.update_model(record.model, tags=tags)
    return case


def cases(registry: Registry, model: str) -> list[Case]:
    """The regression cases saved for ``model``."""
    found = []
    tags = registry.get_model(model).tags
    with tempfile.TemporaryDirectory(prefix="ferry-case-") as folder:
        for tag, key in sorted(tags.items()):
            if not tag.startswith(CASE_TAG_PREFIX):
                continue
            path = Path(folder) / "case.json"
            registry.artifacts.get(key, path)
            found.append(Case.from_json(orjson.loads(path.read_bytes())))
    return found


def check_case(model: LoadedModel, case: Case) -> list[Mismatch]:
    """A saved case replayed against ``model``: the rows whose outputs differ (none: it passes)."""
    actual = run_inputs(model, case.inputs, list(case.expected))
    return compare_outputs(case.expected, actual)
