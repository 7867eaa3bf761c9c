"""The prediction log against real SQLite and PostgreSQL databases: what observe() queues is
written by the thread, read back exactly, bounded, sampled and joined with feedback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ferry.db.events import PredictionEvent
from ferry.errors import ConfigError, InvalidRequest, PredictionNotFound
from ferry.model.signature import Batch
from ferry.monitoring.predlog import (
    Feedback,
    LogPolicy,
    PredictionLog,
    PredictionStore,
    get,
    parse_duration,
    parse_time,
    read_inputs,
    read_records,
)

NAMES = ["a", "b"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.db'}"
    else:
        factory: Callable[[], str] = request.getfixturevalue("pg_database_factory")
        url = factory()
    opened = PredictionStore.open(url, migrate=True)
    yield opened
    opened.close()


def event(
    request_id: str,
    matrix: np.ndarray,
    predictions: np.ndarray,
    *,
    version: str = "1",
    at: float | None = None,
    status: int = 200,
) -> PredictionEvent:
    batch = Batch.of_matrix(matrix, NAMES)
    return PredictionEvent(
        request_id=request_id,
        model="m",
        version=version,
        protocol="native",
        status=status,
        rows=batch.n_rows,
        seconds=0.002,
        timestamp=at if at is not None else time.time(),
        principal="key-1",
        error_code=None if status == 200 else "invalid_value",
        inputs=batch,
        outputs={"predictions": predictions} if status == 200 else None,
    )


def test_logged_requests_read_back_exactly(store: PredictionStore) -> None:
    log = PredictionLog(lambda: store, flush_seconds=0.05)
    rng = np.random.default_rng(0)
    sent = []
    for i in range(30):
        matrix = rng.normal(size=(i % 3 + 1, 2))
        preds = (matrix[:, 0] > 0).astype(np.int64)
        sent.append((f"r{i}", matrix, preds))
        log.observe(event(f"r{i}", matrix, preds, version="1" if i < 20 else "2"))
    log.observe(event("x", np.zeros((1, 2)), np.zeros(1), status=422))
    assert log.flush()
    records = read_records(store, "m", limit=1000)
    assert len(records) == 31
    assert [r.request_id for r in records][:2] == ["x", "r29"]  # newest first
    one = get(store, "r7")
    _, matrix, preds = sent[7]
    assert one.inputs == {"a": matrix[:, 0].tolist(), "b": matrix[:, 1].tolist()}
    assert one.outputs == {"predictions": preds.tolist()}
    assert (one.model, one.version, one.rows, one.principal) == ("m", "1", len(preds), "key-1")
    failed = get(store, "x")
    assert (failed.status, failed.error_code, failed.outputs) == (422, "invalid_value", None)
    with pytest.raises(PredictionNotFound, match="'nope'"):
        get(store, "nope")

    frame = read_inputs(store, "m", version=1, columns=NAMES)
    expected = np.vstack([m for _, m, _ in sent[:20]])
    assert list(frame.columns) == NAMES
    assert np.array_equal(frame.to_numpy(), expected)
    everything = read_inputs(store, "m")
    assert len(everything) == sum(len(m) for _, m, _ in sent)  # the failed request is left out
    log.close()


def test_time_window(store: PredictionStore) -> None:
    log = PredictionLog(lambda: store, flush_seconds=0.05)
    now = time.time()
    log.observe(event("old", np.ones((2, 2)), np.ones(2), at=now - 7200))
    log.observe(event("new", np.zeros((1, 2)), np.zeros(1), at=now - 60))
    assert log.flush()
    since = datetime.now(UTC) - timedelta(hours=1)
    assert [r.request_id for r in read_records(store, "m", since=since)] == ["new"]
    assert len(read_inputs(store, "m", since=since)) == 1
    until = datetime.now(UTC) - timedelta(minutes=30)
    assert [r.request_id for r in read_records(store, "m", until=until)] == ["old"]
    assert read_inputs(store, "other").empty
    log.close()


def test_feedback_joins_by_request_id(store: PredictionStore) -> None:
    log = PredictionLog(lambda: store, flush_seconds=0.05)
    log.observe(event("r1", np.ones((2, 2)), np.array([1, 0])))
    log.observe(event("r2", np.ones((1, 2)), np.array([1])))
    assert log.flush()
    at = datetime.now(UTC)
    store.add_feedback([Feedback("r1", "m", "1", [1, 1], at)])
    store.add_feedback([Feedback("r1", "m", "1", [1, 0], at)])  # replaces the first
    labeled = store.labeled("m")
    assert [(item.prediction.request_id, item.truth) for item in labeled] == [("r1", [1, 0])]
    log.close()


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    class Count:
        value = 0.0

        def inc(self, amount: float = 1) -> None:
            self.value += amount

    dropped = Count()
    store = PredictionStore.open(f"sqlite:///{tmp_path / 'log.db'}", migrate=True)
    gate = threading.Event()

    def stuck_store() -> PredictionStore:  # a database that does not answer until the gate opens
        gate.wait(30)
        return store

    log = PredictionLog(stuck_store, max_queue=5, flush_seconds=3600, dropped=dropped)
    for i in range(40):  # the writer wakes at a half-full queue, then hangs on the store
        log.observe(event(f"r{i}", np.ones((1, 2)), np.ones(1)))
        time.sleep(0.002)
    assert dropped.value >= 40 - 5 - 5  # at most what the writer took and a full queue
    gate.set()
    assert log.flush()
    assert store.count("m") + dropped.value == 40  # every request either logged or counted
    log.close()


def test_a_half_full_queue_wakes_the_writer(tmp_path: Path) -> None:
    """Between flushes a fast server would fill the queue: half full, the writer runs early."""
    store = PredictionStore.open(f"sqlite:///{tmp_path / 'log.db'}", migrate=True)
    log = PredictionLog(lambda: store, max_queue=100, flush_seconds=3600)
    for i in range(400):
        log.observe(event(f"r{i}", np.ones((1, 2)), np.ones(1)))
        if i % 40 == 39:  # the pace of a server: the writer gets its turn
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while store.count("m") < 350 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.count("m") >= 350  # written without a flush; under half a queue may wait
    assert log.flush()
    assert store.count("m") == 400
    log.close()


def test_sampling_keeps_about_the_fraction(tmp_path: Path) -> None:
    store = PredictionStore.open(f"sqlite:///{tmp_path / 'log.db'}", migrate=True)
    log = PredictionLog(lambda: store, policy=LogPolicy.parse("0.25"), flush_seconds=0.05)
    for i in range(2000):
        log.observe(event(f"r{i}", np.ones((1, 2)), np.ones(1)))
    assert log.flush()
    assert 380 < store.count("m") < 620
    log.close()


def test_policy_and_durations() -> None:
    assert LogPolicy.parse("off").fraction == 0.0
    assert LogPolicy.parse("all").fraction == 1.0
    assert LogPolicy.parse("0.1").fraction == 0.1
    with pytest.raises(ConfigError, match="sample fraction"):
        LogPolicy.parse("1.5")
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2h") == timedelta(hours=2)
    with pytest.raises(InvalidRequest, match="window"):
        parse_duration("soon")
    assert parse_time("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert abs((datetime.now(UTC) - parse_time("1h")) - timedelta(hours=1)) < timedelta(seconds=5)


def test_string_and_missing_columns(tmp_path: Path) -> None:
    store = PredictionStore.open(f"sqlite:///{tmp_path / 'log.db'}", migrate=True)
    log = PredictionLog(lambda: store, flush_seconds=0.05)
    city = np.array(["paris", None, "nice"], dtype=object)
    income = np.array([1.5, np.nan, 3.0])
    batch = Batch({"city": city, "income": income}, 3)
    log.observe(
        PredictionEvent("s", "mixed", "1", "native", 200, 3, 0.01, time.time(), inputs=batch,
                        outputs={"predictions": np.array(["x", "y", "z"], dtype=object)})
    )  # fmt: skip
    assert log.flush()
    frame = read_inputs(store, "mixed", columns=["income", "city"])
    expected = pd.DataFrame({"income": [1.5, None, 3.0], "city": ["paris", None, "nice"]})
    pd.testing.assert_frame_equal(frame, expected)
    assert get(store, "s").outputs == {"predictions": ["x", "y", "z"]}
    log.close()


def test_retention_purges_old_requests_and_their_feedback(tmp_path: Path) -> None:
    store = PredictionStore.open(f"sqlite:///{tmp_path / 'log.db'}", migrate=True)
    keeper = PredictionLog(lambda: store, flush_seconds=0.05)
    now = time.time()
    keeper.observe(event("old", np.ones((1, 2)), np.ones(1), at=now - 3 * 86400))
    keeper.observe(event("new", np.ones((1, 2)), np.ones(1), at=now))
    assert keeper.flush()
    keeper.close()
    store.add_feedback([Feedback("old", "m", "1", [1], datetime.now(UTC))])
    assert len(store.labeled("m")) == 1
    # a log keeping one day purges with its first write
    log = PredictionLog(lambda: store, flush_seconds=0.05, retention=timedelta(days=1))
    log.observe(event("newer", np.ones((1, 2)), np.ones(1)))
    assert log.flush()
    deadline = time.monotonic() + 5
    while store.count("m") != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(r.request_id for r in read_records(store, "m")) == ["new", "newer"]
    assert store.labeled("m") == []
    log.close()


def test_ferry_request_ids_are_uuid7_and_their_keys_grow_with_time() -> None:
    import uuid

    from ferry.ids import time_ordered_id
    from ferry.monitoring.predlog.codec import request_key

    ids = []
    for _ in range(5):
        ids.append(time_ordered_id())
        time.sleep(0.002)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert abs(int(value[:12], 16) / 1000 - time.time()) < 5  # unix milliseconds first
    keys = [request_key(value) for value in ids]
    assert keys == sorted(keys)  # new rows go to the end of the index
    assert all(0 <= key < 2**63 for key in keys)
    assert len(set(ids)) == len(ids)
    # a client's own id (any shape, a UUIDv4 included) is hashed, as before
    assert request_key("my-request-1") != request_key("my-request-2")
    v4 = uuid.uuid4().hex
    assert request_key(v4) != int(v4[:16], 16)
    # a client id shaped like ours whose leading bits would overflow a BIGINT is hashed too
    huge = "ffffffffffff7fff8fffffffffffffff"
    assert -(2**63) <= request_key(huge) < 2**63
    assert request_key(huge) != int(huge[:16], 16)


def test_rows_of_the_old_table_are_carried_over_and_found(tmp_path: Path) -> None:
    """Requests logged one row each (before chunks), some keyed by the hash even for a
    UUIDv7-shaped id, are moved into chunks by the migration and still found, listed and
    joined with their feedback."""
    import sqlalchemy as sa

    from ferry.db.migrations import upgrade
    from ferry.ids import time_ordered_id
    from ferry.monitoring.predlog.codec import _hashed_key, request_key

    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade(url, "0004_builds")
    hashed_id, time_id, client_id = time_ordered_id(), time_ordered_id(), "client-7"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for n, (request_id, key) in enumerate(
            [(hashed_id, _hashed_key(hashed_id)), (time_id, request_key(time_id)),
             (client_id, request_key(client_id))]
        ):  # fmt: skip
            conn.exec_driver_sql(
                "INSERT INTO predictions (request_id, request_key, model, version, protocol,"
                " status, error_code, rows, latency, principal, at, inputs, outputs) VALUES"
                " (?, ?, 'm', '1', 'native', 200, NULL, 1, 0.002, NULL, ?, ?, ?)",
                (request_id, key, f"2026-11-0{n + 1} 10:00:00.000123",
                 '{"a":[1.5],"b":[null]}', f'{{"predictions":[{n}]}}'),
            )  # fmt: skip
    engine.dispose()
    store = PredictionStore.open(url, migrate=True)
    for n, request_id in enumerate([hashed_id, time_id, client_id]):
        found = get(store, request_id)
        assert found.outputs == {"predictions": [n]}
        assert found.inputs == {"a": [1.5], "b": [None]}
        assert found.at == datetime(2026, 11, n + 1, 10, 0, 0, 123, tzinfo=UTC)
    assert set(store.find_many([hashed_id, time_id, "nope"])) == {hashed_id, time_id}
    listed = read_records(store, "m", since=datetime(2026, 11, 2, tzinfo=UTC))
    assert [r.request_id for r in listed] == [client_id, time_id]  # newest first
    store.add_feedback([Feedback(time_id, "m", "1", [1], datetime.now(UTC))])
    assert [item.prediction.request_id for item in store.labeled("m")] == [time_id]
    store.close()


def test_forked_workers_never_share_random_bits() -> None:
    """Ids draw from a pool of urandom bytes: a forked worker must not reuse its parent's."""
    import os

    from ferry.ids import time_ordered_id

    time_ordered_id()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.write(write, "".join(time_ordered_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    parent = "".join(time_ordered_id() for _ in range(3))
    child_noise = {child[i + 13 : i + 32] for i in range(0, 96, 32)}
    parent_noise = {parent[i + 13 : i + 32] for i in range(0, 96, 32)}
    assert len(child_noise) == 3
    assert not child_noise & parent_noise


def test_inputs_are_read_back_in_either_written_form() -> None:
    """Matrices are written as rows under their column names, anything else as columns; both
    read back as columns, NaN as None, and a column that happens to be named "rows" stays one."""
    import orjson

    from ferry.model.signature import Batch
    from ferry.monitoring.predlog.codec import columns_of, encode_batch

    def decode_columns(text: bytes | str) -> dict[str, list[object]] | None:
        return columns_of(orjson.loads(text))

    matrix = np.array([[1.5, np.nan], [3.0, 4.0]])
    as_rows = encode_batch(Batch.of_matrix(matrix, ["a", "b"]))
    assert as_rows.startswith(b'{"rows":{"columns":["a","b"],"data":')
    assert decode_columns(as_rows) == {"a": [1.5, 3.0], "b": [None, 4.0]}
    wide = np.arange(12.0).reshape(2, 6)
    strided = Batch.of_matrix(wide[:, ::3], ["a", "b"])  # not contiguous: written as columns
    assert decode_columns(encode_batch(strided)) == {"a": [0.0, 6.0], "b": [3.0, 9.0]}
    named_rows = Batch({"rows": np.array([1, 2])}, 2)
    assert decode_columns(encode_batch(named_rows)) == {"rows": [1, 2]}
    assert decode_columns('{"a":[1.0],"b":[2.0]}') == {"a": [1.0], "b": [2.0]}  # older rows


def id_at(at: float) -> str:
    """A Ferry request id (UUIDv7) made at unix time ``at``."""
    from ferry.ids import time_ordered_id

    return f"{round(at * 1000):012x}{time_ordered_id()[12:]}"


def test_chunks_hold_a_version_per_write_and_clients_ids_by_name(
    store: PredictionStore,
) -> None:
    """Ferry's ids share a chunk per model version (split past SPAN_KEYS of keys, or
    CHUNK_REQUESTS); a client's own id, hashed far from its request's time, joins the chunk
    without stretching its key range, and ``prediction_ids`` names the chunk for it."""
    from ferry.monitoring.predlog.chunks import CHUNK_REQUESTS, SPAN_KEYS, chunked
    from ferry.monitoring.predlog.codec import event_entry, request_key

    now = time.time()
    ones = (np.ones((1, 2)), np.ones(1))
    ours = [id_at(now + i / 1000) for i in range(5)]
    entries = [event_entry(event(request_id, *ones, at=now)) for request_id in ours]
    entries.insert(2, event_entry(event("client-7", *ones, at=now)))
    entries.append(event_entry(event(id_at(now), *ones, at=now, version="2")))
    first, second = chunked(entries)
    assert (first.version, len(first.entries), second.version, len(second.entries)) == (
        "1",
        6,
        "2",
        1,
    )
    assert first.client_keys == [request_key("client-7")]
    assert (first.low, first.high) == (request_key(ours[0]), request_key(ours[-1]))
    client_only = event_entry(event("client-8", *ones, at=now))
    (alone,) = chunked([client_only])  # one key: its own range
    assert (alone.low, alone.high, alone.client_keys) == (client_only.key, client_only.key, [])
    clients = [event_entry(event(f"client-{i}", *ones, at=now)) for i in range(9, 12)]
    (named,) = chunked(clients)
    assert (named.low, named.high, named.client_keys) == (None, None, [e.key for e in clients])
    # a write holding requests made 30 s apart (a store that was stuck) spans two chunks
    late = event(id_at(now), *ones, at=now)
    early = event(id_at(now - 30), *ones, at=now - 30)
    assert len(chunked([event_entry(early), event_entry(late)])) == 2
    many = [event_entry(event(id_at(now), *ones, at=now)) for _ in range(CHUNK_REQUESTS + 1)]
    assert [len(chunk.entries) for chunk in chunked(many)] == [CHUNK_REQUESTS, 1]
    for chunk in chunked(entries + many):
        assert chunk.low is None or chunk.high is None or chunk.high - chunk.low <= SPAN_KEYS

    store.append([*entries, client_only, *clients])
    for request_id in [*ours, *(f"client-{i}" for i in range(7, 12))]:
        assert get(store, request_id).request_id == request_id
    assert set(store.find_many(["client-7", ours[3], "client-99"])) == {"client-7", ours[3]}
    assert store.count("m") == 11
    assert store.purge(datetime.fromtimestamp(now + 60, UTC)) == 11
    with store.engine.connect() as conn:  # the purged chunks' names for clients' ids went too
        assert conn.exec_driver_sql("SELECT count(*) FROM prediction_ids").scalar_one() == 0
    with pytest.raises(PredictionNotFound):
        get(store, "client-7")


def test_windows_across_chunks_of_several_workers(
    store: PredictionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers' logs write overlapping chunks: lists come back in time order, paged,
    counts and windows cut chunks exactly, and purging removes whole old chunks."""
    import ferry.monitoring.predlog.store as store_module

    monkeypatch.setattr(store_module, "PAGE_CHUNKS", 2)  # several pages of chunks
    start = time.time() - 100
    workers = [PredictionLog(lambda: store, flush_seconds=3600) for _ in range(2)]
    sent = []
    for i in range(60):
        at = start + i
        request_id = id_at(at)
        sent.append((at, request_id))
        workers[i % 2].observe(event(request_id, np.full((1, 2), float(i)), np.array([i]), at=at))
        if i % 10 == 9:  # a write every ten requests: twelve chunks, interleaved in time
            assert all(log.flush() for log in workers)
    newest = [r.request_id for r in read_records(store, "m", limit=100)]
    assert newest == [request_id for _, request_id in reversed(sent)]
    oldest = store.records("m", newest_first=False, limit=7, offset=20)
    assert [r.request_id for r in oldest] == [request_id for _, request_id in sent[20:27]]
    since = datetime.fromtimestamp(start + 15.5, UTC)
    until = datetime.fromtimestamp(start + 42.5, UTC)
    assert store.count("m", since=since, until=until) == 27
    assert store.count("m") == 60
    inside = read_inputs(store, "m", since=since, until=until)
    assert sorted(inside["a"].tolist()) == [float(i) for i in range(16, 43)]  # chunk order
    assert set(store.find_many([request_id for _, request_id in sent])) == {
        request_id for _, request_id in sent
    }
    removed = store.purge(datetime.fromtimestamp(start + 30, UTC))
    assert removed == 60 - store.count("m")
    assert 20 <= removed <= 30  # whole chunks only: none holding a request after the cut
    assert store.count("m", until=datetime.fromtimestamp(start + 20, UTC)) == 0
    for log in workers:
        log.close()


def mixed_events() -> list[PredictionEvent]:
    """One version's requests with every kind of inputs: rows of numbers under two sets of
    columns (kept as raw float64s until written), columns of strings, none at all."""
    two = Batch.of_matrix(np.array([[1.5, np.nan]]), ["a", "b"])
    wide = Batch.of_matrix(np.arange(6.0).reshape(2, 3), ["c", "d", "e"])
    strings = Batch({"city": np.array(["nice", None], dtype=object)}, 2)
    two_more = Batch.of_matrix(np.array([[3.0, 4.0], [5.0, 6.0]]), ["a", "b"])
    inputs = {"r1": two, "r2": wide, "r3": strings, "client-4": None, "r5": two_more}
    now = time.time()
    return [
        PredictionEvent(
            request_id,
            "m",
            "1",
            "native",
            422 if batch is None else 200,
            0 if batch is None else batch.n_rows,
            0.001,
            now + i / 1000,
            inputs=batch,
            outputs=None if batch is None else {"predictions": np.arange(batch.n_rows)},
        )  # fmt: skip
        for i, (request_id, batch) in enumerate(inputs.items())
    ]


EXPECTED_INPUTS = {
    "r1": {"a": [1.5], "b": [None]},
    "r2": {"c": [0.0, 3.0], "d": [1.0, 4.0], "e": [2.0, 5.0]},
    "r3": {"city": ["nice", None]},
    "client-4": None,
    "r5": {"a": [3.0, 5.0], "b": [4.0, 6.0]},
}


def test_one_write_of_mixed_inputs_reads_back_exactly(store: PredictionStore) -> None:
    log = PredictionLog(lambda: store, flush_seconds=3600)
    for item in mixed_events():
        log.observe(item)
    assert log.flush()
    with store.engine.connect() as conn:  # one chunk: two matrices, the rest as JSON
        (data,) = conn.exec_driver_sql("SELECT data FROM prediction_chunks").scalars().all()
    assert data.startswith('{"matrices":[{"columns":["a","b"],"data":[[1.5,null],[3.0,4.0]')
    for request_id, inputs in EXPECTED_INPUTS.items():
        assert get(store, request_id).inputs == inputs
    listed = store.records("m", newest_first=False)
    assert [r.request_id for r in listed] == list(EXPECTED_INPUTS)
    assert [r.outputs for r in listed][:2] == [{"predictions": [0]}, {"predictions": [0, 1]}]
    frame = read_inputs(store, "m", columns=["a", "b"])  # the failed request left out
    assert frame.fillna(-1.0).to_dict("list") == {  # rows of other columns: missing here
        "a": [1.5, -1.0, -1.0, -1.0, -1.0, 3.0, 5.0],
        "b": [-1.0, -1.0, -1.0, -1.0, -1.0, 4.0, 6.0],
    }
    log.close()


def test_migrating_down_and_up_keeps_every_request(store: PredictionStore) -> None:
    """The downgrade expands chunks (matrices included) into a row a request; the upgrade
    gathers them back: every request is found as it was, by id and in lists."""
    from alembic import command

    from ferry.db.migrations import _config, upgrade

    log = PredictionLog(lambda: store, flush_seconds=3600)
    for item in mixed_events():
        log.observe(item)
    assert log.flush()
    log.close()
    before = {r.request_id: r for r in store.records("m")}
    with store.engine.begin() as conn:
        command.downgrade(_config(conn), "0004_builds")
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT request_id, inputs FROM predictions").all()
    assert len(rows) == len(EXPECTED_INPUTS)
    upgrade(str(store.engine.url.render_as_string(hide_password=False)))
    after = {r.request_id: r for r in store.records("m")}
    assert after == before
    assert {key: value.inputs for key, value in after.items()} == EXPECTED_INPUTS


def test_ids_json_writes_escaped_are_found_too(store: PredictionStore) -> None:
    """A lookup scans a chunk's text for a plain id before parsing it; ids that JSON escapes
    (quotes, backslashes) or the old rows' encoder wrote as \\u escapes are parsed for."""
    log = PredictionLog(lambda: store, flush_seconds=3600)
    odd = ['quote"d', "back\\slash", "é-1", "plain-1"]
    for request_id in odd:
        log.observe(event(request_id, np.ones((1, 2)), np.ones(1)))
    assert log.flush()
    for request_id in odd:
        assert get(store, request_id).request_id == request_id
    assert set(store.find_many(odd[:2] + ["plain-2"])) == set(odd[:2])
    log.close()


def test_clients_ids_are_kept_beside_ours_and_reuse_never_finds_the_wrong_request(
    store: PredictionStore,
) -> None:
    """The server's id is the key of every request; the caller's X-Request-ID is a field
    found by name. Two callers sending the same id each find their own request (by principal),
    an anonymous lookup of a reused id is refused naming both server ids (it answered the
    later one), and a client id that copies another request's server id finds that request,
    not the copier's."""
    from dataclasses import replace

    from ferry.errors import AmbiguousRequestId

    now = time.time()
    ones = (np.ones((1, 2)), np.ones(1))
    a_id, b_id, c_id, d_id = (id_at(now + i / 1000) for i in range(4))
    a = replace(event(a_id, *ones, at=now), client_request_id="order-1", principal="key-a")
    b = replace(event(b_id, *ones, at=now), client_request_id="order-1", principal="key-b")
    c = replace(event(c_id, *ones, at=now), client_request_id="solo-1", principal="key-a")
    d = replace(event(d_id, *ones, at=now), client_request_id=a_id, principal="key-b")
    log = PredictionLog(lambda: store, flush_seconds=3600)
    for observed in (a, b, c, d):
        log.observe(observed)
    assert log.flush()
    log.close()

    assert store.get(a_id).client_request_id == "order-1"
    assert store.get(a_id).to_json()["client_request_id"] == "order-1"
    assert store.get(a_id, "key-b").request_id == a_id  # a server id is unique: no scoping
    assert store.get("order-1", "key-a").request_id == a_id
    assert store.get("order-1", "key-b").request_id == b_id
    assert store.get("solo-1").request_id == c_id  # one request sent it: found by anyone
    with pytest.raises(AmbiguousRequestId) as caught:
        store.get("order-1")
    assert caught.value.details["request_ids"] == sorted([a_id, b_id])
    with pytest.raises(AmbiguousRequestId):
        store.get("order-1", "key-c")  # neither is the asker's
    found = store.find_many([a_id, "solo-1", "order-1"], "key-b")
    assert {k: v.request_id for k, v in found.items()} == {
        a_id: a_id,  # not d, whose client id copied a's server id
        "solo-1": c_id,
        "order-1": b_id,
    }
