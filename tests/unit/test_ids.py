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


def test_a_forked_worker_never_reuses_the_parents_random_bits() -> None:
    import os

    time_ordered_id()  # the parent now holds a pool of random bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids must not draw on the parent's pool
        os.write(write, ",".join(time_ordered_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split(",")
    os.close(read)
    parent = [time_ordered_id() for _ in range(3)]
    # the last 62 bits of a UUIDv7 are random: a shared pool would repeat them
    assert not {c[-12:] for c in child} & {p[-12:] for p in parent}
