"""Naming rules, version references and list filters."""

from __future__ import annotations

import pytest

from ferry.errors import InvalidName, InvalidRequest
from ferry.registry.filters import (
    MetricFilter,
    TagFilter,
    check_page,
    parse_metric_filter,
    parse_tag_filter,
)
from ferry.registry.names import (
    Ref,
    check_alias,
    check_metrics,
    check_name,
    check_tags,
    parse_ref,
)


@pytest.mark.parametrize("name", ["iris", "Iris-2", "a", "my_model.v2", "9lives", "x" * 128])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "..", "a..b", ".hidden", "-dash", "_under", "x" * 129, "sp ace", "é", "a@b", "a:b"],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidName) as info:
        check_name(name)
    assert info.value.code == "invalid_name"
    assert info.value.details["field"] == "name"


def test_alias_names_are_never_all_digits() -> None:
    assert check_alias("production") == "production"
    assert check_alias("v2") == "v2"
    with pytest.raises(InvalidName, match="all digits"):
        check_alias("42")


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("iris", Ref("iris")),
        ("iris@staging", Ref("iris", alias="staging")),
        ("iris/3", Ref("iris", version=3)),
        ("iris:12", Ref("iris", version=12)),
        ("iris@3", Ref("iris", version=3)),  # aliases are never all digits
    ],
)
def test_parse_ref(text: str, ref: Ref) -> None:
    assert parse_ref(text) == ref


@pytest.mark.parametrize(
    "text", ["", "iris/", "iris/0", "iris/x", "iris:-1", "iris@0", "iris@", "a/b/c", "../x", "@p"]
)
def test_bad_refs(text: str) -> None:
    with pytest.raises(InvalidName):
        parse_ref(text)


def test_tags_and_metrics_are_checked() -> None:
    assert check_tags({"team": "vision", "mlflow.source": "x"}) == {
        "team": "vision",
        "mlflow.source": "x",
    }
    assert check_metrics({"acc": 1, "f1": 0.5}) == {"acc": 1.0, "f1": 0.5}
    with pytest.raises(InvalidName):
        check_tags({"a=b": "c"})
    with pytest.raises(InvalidRequest):
        check_tags({"a": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidRequest, match="finite"):
        check_metrics({"acc": float("nan")})
    with pytest.raises(InvalidRequest):
        check_metrics({"acc": True})


def test_tag_filters() -> None:
    assert parse_tag_filter(None) is None
    assert parse_tag_filter("team") == TagFilter("team")
    assert parse_tag_filter("team=vision") == TagFilter("team", "vision")
    assert parse_tag_filter("team=") == TagFilter("team", "")
    with pytest.raises(InvalidName):
        parse_tag_filter("=x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acc>=0.9", MetricFilter("acc", ">=", 0.9)),
        ("acc > 0.9", MetricFilter("acc", ">", 0.9)),
        ("loss<1e-3", MetricFilter("loss", "<", 0.001)),
        ("f1=1", MetricFilter("f1", "==", 1.0)),
        ("f1!=0", MetricFilter("f1", "!=", 0.0)),
        ("val.acc<=-2", MetricFilter("val.acc", "<=", -2.0)),
    ],
)
def test_metric_filters(text: str, expected: MetricFilter) -> None:
    assert parse_metric_filter(text) == expected


@pytest.mark.parametrize("text", ["acc", "acc>>1", ">=1", "acc>=x", "acc>=nan", "acc>=inf"])
def test_bad_metric_filters(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_metric_filter(text)
    assert info.value.details.get("field") == "metric" or info.value.code == "invalid_name"


def test_page_bounds() -> None:
    check_page(1, 0)
    check_page(1000, 5)
    for limit, offset in ((0, 0), (1001, 0), (10, -1), (True, 0)):
        with pytest.raises(InvalidRequest):
            check_page(limit, offset)
