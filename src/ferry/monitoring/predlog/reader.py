"""Reading the prediction log: records, a request by id, and the live window of inputs as a
DataFrame (what drift detection compares with the reference profile)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ferry.config.settings import Settings, get_settings
from ferry.monitoring.predlog.records import LoggedPrediction
from ferry.monitoring.predlog.store import PredictionStore

if TYPE_CHECKING:
    import pandas as pd


def open_store(settings: Settings | None = None, *, migrate: bool = False) -> PredictionStore:
    """The log in the registry's database: FERRY_DATABASE_URL, else FERRY_HOME's SQLite."""
    from ferry.config.paths import database_url

    return PredictionStore.open(database_url(settings or get_settings()), migrate=migrate)


def read_records(
    store: PredictionStore,
    model: str | None = None,
    version: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    limit: int = 1000,
    offset: int = 0,
) -> list[LoggedPrediction]:
    """Logged requests (failed ones included), newest first."""
    return store.records(
        model, _version(version), since, until, limit=limit, offset=offset, newest_first=True
    )


def get(store: PredictionStore, request_id: str) -> LoggedPrediction:
    """The logged request with this id; PredictionNotFound (a 404) when there is none."""
    return store.get(request_id)


def read_inputs(
    store: PredictionStore,
    model: str,
    version: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    columns: Sequence[str] | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Every input row of the successful requests in the window, one column per signature
    input (``columns`` fixes their order and keeps absent ones as empty), chunk by chunk:
    oldest first, except that requests from several workers' chunks of the same seconds are
    not interleaved (drift compares distributions; order does not matter to it)."""
    import pandas as pd

    gathered: dict[str, list[Any]] = {name: [] for name in columns or ()}
    total = 0
    for batch in store.iter_inputs(model, _version(version), since, until):
        n = len(next(iter(batch.values()), []))
        for name in gathered.keys() | batch.keys():
            values = batch.get(name)
            target = gathered.setdefault(name, [None] * total)
            target.extend(values if values is not None else [None] * n)
        total += n
        if max_rows is not None and total >= max_rows:
            break
    frame = pd.DataFrame(gathered)
    if columns is not None:
        frame = frame[list(columns)]
    if max_rows is not None:
        frame = frame.iloc[:max_rows]
    return frame


def _version(version: str | int | None) -> str | None:
    return None if version is None else str(version)
