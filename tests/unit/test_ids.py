"""Request ids: the server's are UUIDv7; a client's is kept only when well-formed."""

from __future__ import annotations

import pytest

from ferry.ids import MAX_CLIENT_ID, client_request_id, time_ordered_id


@pytest.mark.parametrize(
    "value",
    [
        "req-123",
        "0f8fad5b-d9cb-469f-a165-70867728950e",  # Envoy / Istio
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # W3C traceparent
        "a" * MAX_CLIENT_ID,
        "job:42.batch_7@host+1=x",
    ],
)
def test_well_formed_client_ids_are_kept(value: str) -> None:
    assert client_request_id(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "a" * (MAX_CLIENT_ID + 1), "a" * 60_000, "has space", 'quo"te', "sl/ash", "é", "\n"],
)
def test_malformed_client_ids_are_ignored(value: str | None) -> None:
    assert client_request_id(value) is None


def test_server_ids_are_uuid7_hex() -> None:
    first, second = time_ordered_id(), time_ordered_id()
    assert len(first) == 32
    assert first[12] == "7"
    assert first != second
