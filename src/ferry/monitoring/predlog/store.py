"""The prediction log's table in the metadata store (SQLite or PostgreSQL), read and written.

Requests are stored in chunks (``chunks.py``): each write of a worker's log thread puts the
requests it gathered for a model version in one row, their details as one JSON array
(``meta``: id, status, latency, time, ...) and their inputs and outputs as another (``data``).
A row per request cost the serving core an insert into three indexes for every request,
about half of what the log costs; a chunk costs one insert a second. A request is found by
id through the range of keys its chunk holds; lists and windows read the chunks whose time
range meets the window and keep the requests inside it, merged in time order.

Why a table and not Parquet files: replay and feedback look requests up by id, and several
worker processes (and servers) append at once; a database gives both (an index, and SQLite
WAL + busy timeout / PostgreSQL row inserts) without compacting many small files.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ferry.db.engine import create_engine, describe, redact, write_transaction
from ferry.errors import (
    AmbiguousRequestId,
    DatabaseUnavailable,
    PredictionNotFound,
    StorageError,
)
from ferry.monitoring.predlog.chunks import SPAN_KEYS, chunked
from ferry.monitoring.predlog.codec import (
    AT_US,
    REQUEST_ID,
    STATUS,
    Entry,
    client_id_of,
    columns_of,
    lookup_keys,
    micros,
    record_of,
    stored_request,
    stored_requests,
)
from ferry.monitoring.predlog.records import Feedback, Labeled, LoggedPrediction
from ferry.monitoring.tables import prediction_chunks as chunks
from ferry.monitoring.tables import prediction_feedback, prediction_ids

log = logging.getLogger(__name__)

MAX_PAGE = 10_000
PAGE_CHUNKS = 20
LOWEST_KEY = -(1 << 63)
ID_ROWS = 1000  # 2000 parameters a statement: within SQLite's and PostgreSQL's limits
_INSERT_IDS = "INSERT INTO prediction_ids (request_key, chunk_id) VALUES "
_HEADER = (chunks.c.id, chunks.c.model, chunks.c.version, chunks.c.first_us, chunks.c.last_us)


@dataclass(frozen=True, slots=True)
class Window:
    """Which requests a read wants: a model and version (None: any), a time range."""

    model: str | None = None
    version: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def since_us(self) -> int | None:
        return None if self.since is None else micros(self.since)

    @property
    def until_us(self) -> int | None:
        return None if self.until is None else micros(self.until)

    def chunks(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """``query`` restricted to the chunks that may hold requests in the window."""
        if self.model is not None:
            query = query.where(chunks.c.model == self.model)
        if self.version is not None:
            query = query.where(chunks.c.version == self.version)
        if self.since is not None:
            query = query.where(chunks.c.last_us >= self.since_us)
        if self.until is not None:
            query = query.where(chunks.c.first_us < self.until_us)
        return query

    def bounds(self) -> tuple[int, int]:
        """The window as unix microseconds, ``since`` in and ``until`` out."""
        since, until = self.since_us, self.until_us
        return (LOWEST_KEY if since is None else since, -LOWEST_KEY if until is None else until)

    def holds(self) -> Callable[[list[Any]], bool]:
        """A test of one stored request's ``meta``: is its time inside the window?"""
        low, high = self.bounds()
        return lambda meta: low <= meta[AT_US] < high


class PredictionStore:
    """Appends and queries logged predictions and feedback; thread-safe (a pool); open one per
    process, after ``fork()``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = False) -> PredictionStore:
        """The store over the database at ``url``; ``migrate`` brings its schema up first."""
        if migrate:
            from ferry.db.migrations import upgrade

            upgrade(url)
        return cls(create_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            # connecting failed, the connection dropped, the disk is full: the writer holds
            # its requests until the database takes them again (``backlog.py``)
            raise DatabaseUnavailable(
                "the prediction log's database is unreachable; retry shortly",
                cause=type(getattr(exc, "orig", None) or exc).__name__,
            ) from exc
        except DBAPIError as exc:
            raise StorageError(
                f"prediction log at {redact(self.engine.url)}: {describe(exc)}"
            ) from exc

    # --- writing ------------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Store queued entries (``codec.event_entry``) as chunks, in one transaction."""
        if not entries:
            return
        with self._errors(), write_transaction(self.engine) as conn:
            for chunk in chunked(entries):
                inserted = conn.execute(chunks.insert().values(chunk.row()))
                if chunk.client_keys:
                    key = inserted.inserted_primary_key
                    if key is None:
                        raise StorageError("the database gave no id to a new log chunk")
                    self._name_chunk(conn, chunk.client_keys, int(key[0]))

    def _name_chunk(self, conn: Connection, keys: Sequence[int], chunk_id: int) -> None:
        """``prediction_ids`` rows for ``keys``: straight to the driver, many rows a statement
        (SQLAlchemy's executemany cost 3 us a row on SQLite, psycopg's 20 us)."""
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        for start in range(0, len(keys), ID_ROWS):
            part = keys[start : start + ID_ROWS]
            values = ", ".join([f"({mark}, {mark})"] * len(part))
            params = tuple(chain.from_iterable((key, chunk_id) for key in part))
            conn.exec_driver_sql(_INSERT_IDS + values, params)

    def add_feedback(self, items: Sequence[Feedback]) -> None:
        """Store truths (replacing earlier feedback for the same request ids), all or none."""
        if not items:
            return
        ids = [item.request_id for item in items]
        with self._errors(), write_transaction(self.engine) as conn:
            conn.execute(
                prediction_feedback.delete().where(prediction_feedback.c.request_id.in_(ids))
            )
            conn.execute(
                prediction_feedback.insert(),
                [
                    {
                        "request_id": item.request_id,
                        "model": item.model,
                        "version": item.version,
                        "truth": orjson.dumps(item.truth).decode(),
                        "at": item.at,
                    }
                    for item in items
                ],
            )

    # --- finding requests by id ---------------------------------------------------------------
    def get(self, request_id: str, principal: str | None = None) -> LoggedPrediction:
        """The logged request with this id (Ferry's, or a client's own: ``find_many``)."""
        found = self.find(request_id, principal)
        if found is None:
            raise PredictionNotFound(
                f"no logged prediction has request id {request_id!r}", request_id=request_id
            )
        return found

    def find(self, request_id: str, principal: str | None = None) -> LoggedPrediction | None:
        return self.find_many([request_id], principal).get(request_id)

    def find_many(
        self, request_ids: Sequence[str], principal: str | None = None
    ) -> dict[str, LoggedPrediction]:
        """The logged requests among ``request_ids``, by id.

        An id is Ferry's own (unique: it wins) or a client's X-Request-ID, which any caller
        may reuse: of the requests that sent it, those of ``principal`` (the caller asking)
        when it has some, and if that still leaves several, AmbiguousRequestId names their
        Ferry ids rather than answering one of them (the latest was answered, and feedback
        for the earlier one refused)."""
        wanted = set(request_ids)
        keys = sorted({key for request_id in wanted for key in lookup_keys(request_id)})
        found: dict[str, LoggedPrediction] = {}
        placed: dict[str, tuple[int, int]] = {}  # where each was found: the latest wins
        by_client: dict[str, list[LoggedPrediction]] = {}
        needles = _needles(wanted)
        with self._errors(), self.engine.connect() as conn:
            ids = _chunks_holding(conn, keys)
            for start in range(0, len(ids), 50):
                query = sa.select(*_HEADER, chunks.c.meta).where(
                    chunks.c.id.in_(ids[start : start + 50])
                )
                for row in conn.execute(query).all():
                    if needles is not None and not any(n in row.meta for n in needles):
                        continue  # scanning the text spares parsing a chunk without them
                    metas = orjson.loads(row.meta)
                    hits = [
                        i
                        for i, meta in enumerate(metas)
                        if meta[REQUEST_ID] in wanted or client_id_of(meta) in wanted
                    ]
                    if not hits:
                        continue
                    text = conn.execute(sa.select(chunks.c.data).where(chunks.c.id == row.id))
                    data = orjson.loads(text.scalar_one())
                    for i in hits:
                        stored = stored_request(data, i)
                        record = record_of(row.model, row.version, metas[i], stored)
                        request_id, where = metas[i][REQUEST_ID], (row.id, i)
                        if request_id in wanted and placed.get(request_id, (-1, -1)) < where:
                            placed[request_id] = where  # requests logged under a client's id
                            found[request_id] = record
                        client_id = record.client_request_id
                        if client_id in wanted and client_id != request_id:
                            by_client.setdefault(client_id, []).append(record)
        for client_id, records in by_client.items():
            if client_id not in found:
                found[client_id] = _one_of(client_id, records, principal)
        return found

    # --- reading windows ----------------------------------------------------------------------
    def records(
        self,
        model: str | None = None,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
        status: int | None = None,
    ) -> list[LoggedPrediction]:
        """Logged requests in the window in time order, ``offset`` of them skipped."""
        window = Window(model, version, since, until)
        holds = window.holds()

        def wanted(meta: list[Any]) -> bool:
            return holds(meta) and (status is None or meta[STATUS] == status)

        merged = self._merged(window, wanted, newest_first=newest_first)
        return list(islice(merged, offset, offset + min(limit, MAX_PAGE)))

    def count(
        self,
        model: str | None = None,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        window = Window(model, version, since, until)
        low, high = window.since_us, window.until_us
        inside: sa.ColumnElement[bool] = sa.true()
        if low is not None:
            inside = sa.and_(inside, chunks.c.first_us >= low)
        if high is not None:
            inside = sa.and_(inside, chunks.c.last_us < high)
        whole = window.chunks(sa.select(sa.func.coalesce(sa.func.sum(chunks.c.requests), 0)))
        edges = window.chunks(sa.select(chunks.c.meta)).where(sa.not_(inside))
        holds = window.holds()
        with self._errors(), self.engine.connect() as conn:
            total = int(conn.execute(whole.where(inside)).scalar_one())
            for (meta,) in conn.execute(edges):  # chunks across an edge: count what is inside
                total += sum(1 for item in orjson.loads(meta) if holds(item))
        return total

    def iter_inputs(
        self,
        model: str,
        version: str | None,
        since: datetime | None,
        until: datetime | None,
        *,
        limit: int | None = None,
    ) -> Iterator[dict[str, list[Any]]]:
        """The input columns of every successful logged request in the window, oldest chunk
        first."""
        window = Window(model, version, since, until)
        holds = window.holds()
        given = 0
        for _, _, metas, data in self._chunks(window, with_data=True):
            for meta, (inputs, _) in zip(metas, data, strict=True):
                if meta[STATUS] != 200 or inputs is None or not holds(meta):
                    continue
                columns = columns_of(inputs)
                if columns:
                    yield columns
                    given += 1
                    if limit is not None and given >= limit:
                        return

    def iter_meta(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[tuple[str, str, list[Any]]]:
        """(model, version, meta) of every logged request in the window, oldest chunk first:
        what aggregates read, without decoding inputs and outputs."""
        window = Window(since=since, until=until)
        holds = window.holds()
        for model, version, metas, _ in self._chunks(window, with_data=False):
            for meta in metas:
                if holds(meta):
                    yield model, version, meta

    def _chunks(
        self, window: Window, *, with_data: bool
    ) -> Iterator[tuple[str, str, list[Any], list[Any]]]:
        """Decoded chunks that may hold requests in the window, oldest first."""
        columns = [*_HEADER, chunks.c.meta, *([chunks.c.data] if with_data else [])]
        for row in self._paged(window.chunks(sa.select(*columns)), newest_first=False):
            data = stored_requests(orjson.loads(row.data)) if with_data else []
            yield row.model, row.version, orjson.loads(row.meta), data

    def _paged(self, query: sa.Select[Any], *, newest_first: bool) -> Iterator[Any]:
        """The chunk rows ``query`` selects (with ``_HEADER``) by their nearest edge, then id:
        ``last_us`` going back, ``first_us`` going forward. Read in keyset pages (a week's
        log holds more chunks than memory should) of 2, 4, ... up to PAGE_CHUNKS chunks (a
        list of five requests needs one chunk, not twenty), each on its own connection, so
        a slow reader holds none between pages."""
        edge = chunks.c.last_us if newest_first else chunks.c.first_us
        order = (edge.desc(), chunks.c.id.desc()) if newest_first else (edge, chunks.c.id)
        after: tuple[int, int] | None = None
        size = 2
        while True:
            page = query
            if after is not None:
                at, chunk_id = after
                page = page.where(
                    sa.or_(edge < at, sa.and_(edge == at, chunks.c.id < chunk_id))
                    if newest_first
                    else sa.or_(edge > at, sa.and_(edge == at, chunks.c.id > chunk_id))
                )
            with self._errors(), self.engine.connect() as conn:
                rows = conn.execute(page.order_by(*order).limit(size)).all()
            yield from rows
            if len(rows) < size:
                return
            after = (getattr(rows[-1], edge.name), rows[-1].id)
            size = min(size * 2, PAGE_CHUNKS)

    def _merged(
        self, window: Window, wanted: Callable[[list[Any]], bool], *, newest_first: bool
    ) -> Iterator[LoggedPrediction]:
        """Wanted requests of the window in time order (ties: chunk, then position): chunks
        are read by their nearest edge, and a request is given once no unread chunk can
        hold one before it."""
        sign = -1 if newest_first else 1
        query = window.chunks(sa.select(*_HEADER, chunks.c.meta, chunks.c.data))
        rows = self._paged(query, newest_first=newest_first)
        heap: list[tuple[int, int, int, LoggedPrediction]] = []
        row = next(rows, None)
        while row is not None:
            following = next(rows, None)
            data: list[Any] | None = None
            for position, meta in enumerate(orjson.loads(row.meta)):
                if wanted(meta):
                    data = stored_requests(orjson.loads(row.data)) if data is None else data
                    record = record_of(row.model, row.version, meta, data[position])
                    order = (sign * meta[AT_US], sign * row.id, sign * position, record)
                    heapq.heappush(heap, order)
            if following is None:
                bound = None
            else:
                bound = sign * (following.last_us if newest_first else following.first_us)
            while heap and (bound is None or heap[0][0] < bound):
                yield heapq.heappop(heap)[3]
            row = following

    def labeled(
        self,
        model: str,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Labeled]:
        """Logged successful predictions in the window (by prediction time) that have
        feedback, in time order."""
        # feedback comes after its prediction: none before ``since`` can be for one inside
        query = sa.select(prediction_feedback.c.request_id, prediction_feedback.c.truth).where(
            prediction_feedback.c.model == model
        )
        if version is not None:
            query = query.where(prediction_feedback.c.version == version)
        if since is not None:
            query = query.where(prediction_feedback.c.at >= since)
        with self._errors(), self.engine.connect() as conn:
            truths = {row.request_id: row.truth for row in conn.execute(query)}
        low, high = Window(since=since, until=until).bounds()
        found = self.find_many(list(truths))
        labeled = [
            Labeled(record, orjson.loads(truths[request_id]))
            for request_id, record in found.items()
            if record.status == 200
            and record.model == model
            and (version is None or record.version == version)
            and low <= micros(record.at) < high
        ]
        return sorted(labeled, key=lambda item: item.prediction.at)

    def purge(self, before: datetime) -> int:
        """Delete the chunks whose every request is older than ``before``, and feedback given
        before it; the count of requests removed."""
        old = chunks.c.last_us < micros(before)
        with self._errors(), write_transaction(self.engine) as conn:
            removed = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(chunks.c.requests), 0)).where(old)
            ).scalar_one()
            conn.execute(
                prediction_ids.delete().where(
                    prediction_ids.c.chunk_id.in_(sa.select(chunks.c.id).where(old))
                )
            )
            conn.execute(chunks.delete().where(old))
            conn.execute(prediction_feedback.delete().where(prediction_feedback.c.at < before))
        return int(removed)


def _one_of(
    client_id: str, records: list[LoggedPrediction], principal: str | None
) -> LoggedPrediction:
    """The one request that sent ``client_id``: the asking caller's own when it has any."""
    if len(records) > 1 and principal is not None:
        own = [record for record in records if record.principal == principal]
        records = own or records
    if len(records) == 1:
        return records[0]
    ids = sorted(record.request_id for record in records)
    raise AmbiguousRequestId(
        f"client request id {client_id!r} was sent by {len(ids)} logged requests; use the "
        f"request_id the server answered with: {ids[:10]}",
        request_id=client_id,
        field="request_id",
        request_ids=ids[:100],
    )


def _needles(request_ids: set[str]) -> list[str] | None:
    """How each of a few ids appears in a chunk's ``meta`` text, when that is certain: ids of
    printable ASCII without quotes or backslashes, which JSON writes as they are."""
    if len(request_ids) > 8 or not all(_PLAIN.fullmatch(r) for r in request_ids):
        return None
    return [f'"{request_id}"' for request_id in request_ids]


_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def _chunks_holding(conn: Connection, keys: Sequence[int]) -> list[int]:
    """Ids of the chunks that may hold any of ``keys`` (sorted): those whose key range holds
    one (an index range per run of keys closer than SPAN_KEYS, so a thousand ids from one
    hour is a few queries) and those ``prediction_ids`` names for one."""
    found: set[int] = set()
    start = 0
    while start < len(keys):
        end = start + 1
        while end < len(keys) and keys[end] - keys[end - 1] <= SPAN_KEYS:
            end += 1
        run = keys[start:end]
        query = sa.select(chunks.c.id, chunks.c.low_key, chunks.c.high_key).where(
            chunks.c.low_key >= max(run[0] - SPAN_KEYS, LOWEST_KEY),
            chunks.c.low_key <= run[-1],
            chunks.c.high_key >= run[0],
        )
        for row in conn.execute(query):
            if _any_between(run, row.low_key, row.high_key):
                found.add(row.id)
        start = end
    for start in range(0, len(keys), 500):
        named = sa.select(prediction_ids.c.chunk_id).where(
            prediction_ids.c.request_key.in_(keys[start : start + 500])
        )
        found.update(conn.execute(named).scalars())
    return sorted(found)


def _any_between(keys: Sequence[int], low: int, high: int) -> bool:
    i = bisect.bisect_left(keys, low)
    return i < len(keys) and keys[i] <= high
