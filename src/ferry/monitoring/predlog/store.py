"""The prediction log's table in the metadata store (SQLite or PostgreSQL), read and written.

Why a table and not Parquet files: replay and feedback look requests up by id, and several
worker processes (and servers) append at once; a database gives both (an index, and SQLite
WAL + busy timeout / PostgreSQL row inserts) without compacting many small files. Inputs and
outputs are JSON text, columns by signature name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ferry.errors import PredictionNotFound, StorageError
from ferry.monitoring.predlog.codec import COLUMNS, decode_columns, lookup_keys, row_record
from ferry.monitoring.predlog.records import Feedback, Labeled, LoggedPrediction
from ferry.registry.metadata.engine import create_engine, redact, write_transaction
from ferry.registry.metadata.tables import prediction_feedback, predictions

log = logging.getLogger(__name__)

MAX_PAGE = 10_000
# 13 parameters a row: 6500 a statement, within SQLite's (32766) and PostgreSQL's (65535) limits
INSERT_ROWS = 500
_INSERT = f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES "  # noqa: S608 - constants


class PredictionStore:
    """Appends and queries logged predictions and feedback; thread-safe (a pool); open one per
    process, after ``fork()``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = False) -> PredictionStore:
        """The store over the database at ``url``; ``migrate`` brings its schema up first."""
        if migrate:
            from ferry.registry.migrations import upgrade

            upgrade(url)
        return cls(create_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise StorageError(f"prediction log at {redact(self.engine.url)}: {exc}") from exc

    # --- writing ------------------------------------------------------------------------------
    @property
    def naive_time(self) -> bool:
        """Whether rows carry their time as naive UTC text (SQLite) rather than a datetime."""
        return self.engine.dialect.name == "sqlite"

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows by column name (``codec.event_row``) in one transaction."""
        naive = self.naive_time
        self.insert_values(
            [
                tuple(_sqlite_time(row[c]) if naive and c == "at" else row[c] for c in COLUMNS)
                for row in rows
            ]
        )

    def insert_values(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows in ``COLUMNS`` order (``codec.event_values``) in one transaction.

        Straight to the driver, ``INSERT_ROWS`` rows per statement: SQLAlchemy's per-row
        parameter processing cost more than SQLite's insert, and an executemany releases and
        retakes the GIL for every row, each time making the event loop (answering requests
        on the same core) hand it over and back."""
        if not rows:
            return
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        one = "(" + ", ".join([mark] * len(COLUMNS)) + ")"
        with self._errors(), write_transaction(self.engine) as conn:
            for start in range(0, len(rows), INSERT_ROWS):
                chunk = rows[start : start + INSERT_ROWS]
                params = tuple(chain.from_iterable(chunk))
                conn.exec_driver_sql(_INSERT + ", ".join([one] * len(chunk)), params)

    def add_feedback(self, items: Sequence[Feedback]) -> None:
        """Store truths (replacing earlier feedback for the same request ids), all or none."""
        if not items:
            return
        import orjson

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

    # --- reading ------------------------------------------------------------------------------
    def get(self, request_id: str) -> LoggedPrediction:
        """The logged request with this id (the latest, if a client reused an id)."""
        found = self.find(request_id)
        if found is None:
            raise PredictionNotFound(
                f"no logged prediction has request id {request_id!r}", request_id=request_id
            )
        return found

    def find(self, request_id: str) -> LoggedPrediction | None:
        query = (
            sa.select(predictions)
            .where(
                predictions.c.request_key.in_(lookup_keys(request_id)),
                predictions.c.request_id == request_id,
            )
            .order_by(predictions.c.id.desc())
            .limit(1)
        )
        with self._errors(), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else row_record(row)

    def find_many(self, request_ids: Sequence[str]) -> dict[str, LoggedPrediction]:
        """The logged requests among ``request_ids``, by id."""
        found: dict[str, LoggedPrediction] = {}
        with self._errors(), self.engine.connect() as conn:
            for start in range(0, len(request_ids), 500):
                chunk = list(request_ids[start : start + 500])
                keys = [key for request_id in chunk for key in lookup_keys(request_id)]
                query = (
                    sa.select(predictions)
                    .where(predictions.c.request_key.in_(keys))
                    .order_by(predictions.c.id)
                )
                wanted = set(chunk)
                for row in conn.execute(query).mappings():
                    if row["request_id"] in wanted:  # not another id with the same hash
                        found[row["request_id"]] = row_record(row)
        return found

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
        query = _filtered(sa.select(predictions), model, version, since, until)
        if status is not None:
            query = query.where(predictions.c.status == status)
        order = predictions.c.id.desc() if newest_first else predictions.c.id
        query = query.order_by(order).limit(min(limit, MAX_PAGE)).offset(offset)
        with self._errors(), self.engine.connect() as conn:
            return [row_record(row) for row in conn.execute(query).mappings()]

    def count(
        self,
        model: str | None = None,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        query = _filtered(sa.select(sa.func.count()).select_from(predictions), model, version,
                          since, until)  # fmt: skip
        with self._errors(), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_inputs(
        self,
        model: str,
        version: str | None,
        since: datetime | None,
        until: datetime | None,
        *,
        limit: int | None = None,
    ) -> Iterator[dict[str, list[Any]]]:
        """The input columns of every successful logged request in the window, oldest first."""
        query = _filtered(sa.select(predictions.c.inputs), model, version, since, until).where(
            predictions.c.status == 200, predictions.c.inputs.is_not(None)
        )
        query = query.order_by(predictions.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._errors(), self.engine.connect() as conn:
            for (text,) in conn.execute(query):
                columns = decode_columns(text)
                if columns:
                    yield columns

    def labeled(
        self,
        model: str,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Labeled]:
        """Logged successful predictions in the window (by prediction time) that have feedback."""
        import orjson

        query = (
            _filtered(
                sa.select(predictions, prediction_feedback.c.truth.label("truth")),
                model,
                version,
                since,
                until,
            )
            .join(
                prediction_feedback,
                prediction_feedback.c.request_id == predictions.c.request_id,
            )
            .where(predictions.c.status == 200)
            .order_by(predictions.c.id)
        )
        with self._errors(), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Labeled(row_record(row), orjson.loads(row["truth"])) for row in rows]

    def purge(self, before: datetime) -> int:
        """Delete predictions (and their feedback) older than ``before``; the count removed."""
        with self._errors(), write_transaction(self.engine) as conn:
            old = sa.select(predictions.c.request_id).where(predictions.c.at < before)
            conn.execute(
                prediction_feedback.delete().where(prediction_feedback.c.request_id.in_(old))
            )
            result = conn.execute(predictions.delete().where(predictions.c.at < before))
        return int(result.rowcount or 0)


def _filtered(
    query: sa.Select[Any],
    model: str | None,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
) -> sa.Select[Any]:
    if model is not None:
        query = query.where(predictions.c.model == model)
    if version is not None:
        query = query.where(predictions.c.version == version)
    if since is not None:
        query = query.where(predictions.c.at >= _utc(since))
    if until is not None:
        query = query.where(predictions.c.at < _utc(until))
    return query


def _sqlite_time(when: datetime) -> str:
    """What SQLAlchemy's SQLite DateTime (via UTCDateTime) stores: naive UTC, microseconds."""
    return _utc(when).astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
