"""The one example replay: a bundle's stored example against its stored expected output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ferry.model.example import replay_example
from ferry.model.loaded import load_bundle


def test_a_fresh_bundle_answers_its_example_as_expected(iris_bundle: Path) -> None:
    replay = replay_example(load_bundle(iris_bundle))
    assert replay.status == "passed"
    assert replay.mismatches == ()
    assert replay.summary() == ""


def test_a_changed_answer_is_a_mismatch_naming_the_row(
    iris_bundle: Path,
) -> None:
    model = load_bundle(iris_bundle)
    assert model.expected is not None
    truth = model.expected["predictions"]
    changed = dict(model.expected, predictions=[truth[0] + 1, *truth[1:]])
    model.expected = changed  # what a bundle whose expected.json was edited loads as
    replay = replay_example(model)
    assert replay.status == "mismatch"
    assert [(m.output, m.row, m.got) for m in replay.mismatches] == [("predictions", 0, truth[0])]
    assert replay.summary().startswith("1 mismatches; first: predictions row 0")


def test_without_an_example_or_expected_output_nothing_is_compared(iris_bundle: Path) -> None:
    model = load_bundle(iris_bundle)
    assert replay_example(dataclasses.replace(model, example=None)).status == "no_example"
    assert replay_example(dataclasses.replace(model, expected=None)).status == (
        "no_expected_output"
    )
