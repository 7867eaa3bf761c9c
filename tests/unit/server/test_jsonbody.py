"""JSON bodies: the numbers orjson refuses are read (and refused later, naming the column);
anything else that is not JSON stays a malformed body."""

from __future__ import annotations

import math

import pytest

from ferry.errors import MalformedBody
from ferry.server.serving.jsonbody import loads


def test_numbers_orjson_refuses_are_read() -> None:
    value = loads(b'{"a": [NaN, Infinity, -Infinity, 1e999, -1e999, 7]}', "body")
    a = value["a"]
    assert math.isnan(a[0])
    assert a[1:5] == [math.inf, -math.inf, math.inf, -math.inf]
    assert a[5] == 7
    huge = loads(b"[" + b"9" * 5000 + b", -" + b"9" * 5000 + b", " + b"9" * 300 + b"]", "body")
    assert huge[:2] == [math.inf, -math.inf]
    assert huge[2] == int("9" * 300)


@pytest.mark.parametrize(
    "body",
    [b"", b'{"a": [inf]}', b'{"a": [-inf]}', b'{"a": ', b"[1, 2,]", b"[Infinity", b"{'a': 1}"],
)
def test_what_is_not_json_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody, match="^body is not valid JSON"):
        loads(body, "body")


def test_deep_nesting_with_an_infinity_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedBody):
        # orjson stops at the Infinity; Python's json then recurses too deep
        loads(b"[Infinity, " + b"[" * 100_000 + b"]" * 100_000 + b"]", "body")
