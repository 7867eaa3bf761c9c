"""Adaptive micro-batching: concurrent requests for one model merged into one predict call.

A request that finds the model idle runs at once, so batching costs nothing at low load.
Requests that arrive while a prediction runs queue up; when it finishes they run together,
up to ``max_batch_size`` rows (optionally waiting ``max_wait_ms`` for more), and each gets
back exactly its own rows, in order. Requests are validated before they queue, so a bad
request never joins a batch; if a merged call still raises, its requests are retried one by
one so only the culprit fails. Predictions always run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
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
    queued_at: float


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class Batcher:
    """One per loaded model and event loop; ``predict`` is what request handlers await."""

    def __init__(
        self,
        model: LoadedModel,
        config: BatchingConfig,
        executor: Executor,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.executor = executor
        self.on_batch = on_batch  # called with the number of requests in each predict call
        self._queue: deque[_Pending] = deque()
        self._draining = False
        self.batches = 0  # merged predict calls made, for tests and metrics
        self.merged_requests = 0

    async def predict(self, batch: Batch, outputs: Sequence[str]) -> Outputs:
        loop = asyncio.get_running_loop()
        if not self.config.enabled or batch.n_rows >= self.config.max_batch_size:
            return await loop.run_in_executor(
                self.executor, self.model.predict_outputs, batch, tuple(outputs)
            )
        future: asyncio.Future[Outputs] = loop.create_future()
        self._queue.append(_Pending(batch, tuple(outputs), future, time.monotonic()))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._wait_for_more()
                group = self._take()
                if self.on_batch is not None:
                    self.on_batch(len(group))
                results = await loop.run_in_executor(self.executor, self._run, group)
                for pending, result in zip(group, results, strict=True):
                    if pending.future.done():  # the caller went away
                        continue
                    if isinstance(result, _Failure):
                        pending.future.set_exception(result.error)
                    else:
                        pending.future.set_result(result)
        finally:
            self._draining = False

    async def _wait_for_more(self) -> None:
        """With ``max_wait_ms`` set, give a lone request a moment to find company."""
        wait = self.config.max_wait_s
        if wait <= 0:
            return
        deadline = self._queue[0].queued_at + wait
        while self._rows_queued() < self.config.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.0005))

    def _rows_queued(self) -> int:
        return sum(p.batch.n_rows for p in self._queue)

    def _take(self) -> list[_Pending]:
        group = [self._queue.popleft()]
        rows = group[0].batch.n_rows
        while self._queue and rows + self._queue[0].batch.n_rows <= self.config.max_batch_size:
            pending = self._queue.popleft()
            rows += pending.batch.n_rows
            group.append(pending)
        return group

    def _run(self, group: list[_Pending]) -> list[Outputs | _Failure]:
        """In the worker thread: one predict call for the group, split back per request."""
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
