"""Adaptive micro-batching: concurrent requests for one model merged into one predict call.

A request that finds the model idle runs at once, so batching costs nothing at low load.
Requests that arrive while a prediction runs queue up; when it finishes they run together,
up to ``max_batch_size`` rows (optionally waiting ``max_wait_ms`` for more), and each gets
back exactly its own rows, in order. Requests are validated before they queue, so a bad
request never joins a batch; if a merged call still raises, its requests are retried one by
one so only the culprit fails. Predictions always run in the model's own thread, off the
event loop; with batching off that thread runs requests one at a time.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ferry.config.settings import Settings
from ferry.model.loaded import LoadedModel
from ferry.model.signature import Batch

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    enabled: bool
    max_batch_size: int
    max_wait_s: float

    @classmethod
    def for_model(cls, model: LoadedModel, settings: Settings) -> BatchingConfig:
        """The model's own serving options where set, else the server's settings."""
        options = model.manifest.serving
        enabled = options.batching if options.batching is not None else settings.batching
        size = options.max_batch_size or settings.max_batch_size
        wait_ms = options.max_wait_ms if options.max_wait_ms is not None else settings.max_wait_ms
        return cls(enabled, size, wait_ms / 1000.0)


@dataclass(slots=True)
class _Pending:
    batch: Batch
    outputs: tuple[str, ...]
    future: asyncio.Future[Outputs]
    loop: asyncio.AbstractEventLoop
    queued_at: float


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class _Stop:
    """Queued by close(): the thread answers what came before it, then ends."""


_STOP = _Stop()


class Batcher:
    """One per loaded model: a thread that runs its predictions, merging what has queued.

    Handing work to a dedicated thread through a SimpleQueue and answering with one
    ``call_soon_threadsafe`` per group costs a few microseconds; an executor round trip
    costs several times that.
    """

    def __init__(
        self,
        model: LoadedModel,
        config: BatchingConfig,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.on_batch = on_batch  # called with the number of requests in each predict call
        self._queue: queue.SimpleQueue[_Pending | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # merged predict calls made, for tests
        self.merged_requests = 0

    async def predict(self, batch: Batch, outputs: Sequence[str]) -> Outputs:
        if self._thread is None:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._queue.put(_Pending(batch, tuple(outputs), future, loop, time.monotonic()))
        return await future

    def close(self) -> None:
        """Stop the thread once the requests already queued are answered."""
        if self._thread is not None:
            self._queue.put(_STOP)

    def _start(self) -> None:
        with self._lock:  # started lazily: a forked worker process starts its own
            if self._thread is None:
                name = f"ferry-predict-{self.model.name}-{self.model.version}"
                self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        carry: _Pending | _Stop | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if isinstance(first, _Stop):
                return
            group = [first]
            if self.config.enabled:
                carry = self._gather(group)
            if self.config.enabled and self.on_batch is not None:
                self.on_batch(len(group))
            results = self._run(group)
            first.loop.call_soon_threadsafe(_deliver, group, results)

    def _gather(self, group: list[_Pending]) -> _Pending | _Stop | None:
        """Add queued requests to ``group`` up to the row limit; returns one that did not fit."""
        rows = group[0].batch.n_rows
        limit = self.config.max_batch_size
        deadline = group[0].queued_at + self.config.max_wait_s
        while rows < limit:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                return None
            if isinstance(item, _Stop) or rows + item.batch.n_rows > limit:
                return item
            group.append(item)
            rows += item.batch.n_rows
        return None

    def _run(self, group: list[_Pending]) -> list[Outputs | _Failure]:
        """One predict call for the group, split back per request."""
        if len(group) == 1:
            return [self._run_one(group[0])]
        outputs = tuple(dict.fromkeys(name for p in group for name in p.outputs))
        try:
            merged = self.model.predict_outputs(Batch.concat([p.batch for p in group]), outputs)
        except Exception:  # one request's rows broke the model: find it, spare the others
            return [self._run_one(p) for p in group]
        self.batches += 1
        self.merged_requests += len(group)
        results: list[Outputs | _Failure] = []
        start = 0
        for pending in group:
            stop = start + pending.batch.n_rows
            results.append({name: merged[name][start:stop] for name in pending.outputs})
            start = stop
        return results

    def _run_one(self, pending: _Pending) -> Outputs | _Failure:
        try:
            return self.model.predict_outputs(pending.batch, pending.outputs)
        except Exception as exc:  # handed to the awaiting request, which reports it
            return _Failure(exc)


def _deliver(group: list[_Pending], results: list[Outputs | _Failure]) -> None:
    """On the event loop: hand each request its result (unless its caller went away)."""
    for pending, result in zip(group, results, strict=True):
        if pending.future.done():
            continue
        if isinstance(result, _Failure):
            pending.future.set_exception(result.error)
        else:
            pending.future.set_result(result)
