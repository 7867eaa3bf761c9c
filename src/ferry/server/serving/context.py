"""Per-app serving state, created in create_app() and part of the app's FerryState."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from ferry.config.settings import Settings
from ferry.db.events import PredictionObserver
from ferry.errors import InvalidRequest
from ferry.model.loaded import LoadedModel
from ferry.monitoring.metrics import ServingMetrics
from ferry.server.serving.batching import Batcher, BatchingConfig
from ferry.server.serving.repository import ModelSource


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What a request names: a model (None: the server's only one), maybe a version."""

    name: str | None
    version: str | None = None


async def resolve_model(context: ServingContext, ref: ModelRef) -> LoadedModel:
    """The default resolver: the source's model; no name means the only model served."""
    if ref.name is not None:
        return await context.models.resolve(ref.name, ref.version)
    names = context.models.names()
    if len(names) != 1:
        raise InvalidRequest(
            f"this server has {len(names)} models; name the model in the path "
            "(/mlflow/<name>/invocations)",
            models=names,
        )
    return await context.models.resolve(names[0])


Resolver = Callable[["ServingContext", ModelRef], Awaitable[LoadedModel]]


@dataclass(slots=True)
class ServingContext:
    models: ModelSource
    metrics: ServingMetrics
    settings: Settings
    batchers: dict[tuple[str, str], Batcher] = field(default_factory=dict)
    # told about every answered prediction request (prediction log, usage metering)
    observers: tuple[PredictionObserver, ...] = ()
    # which loaded model a request's name means: the hook for aliases and traffic splits
    resolver: Resolver = resolve_model

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes

    def batcher(self, model: LoadedModel) -> Batcher:
        key = (model.name, model.version)
        batcher = self.batchers.get(key)
        if batcher is None:
            config = BatchingConfig.for_model(model, self.settings)
            histogram = self.metrics.batch_requests.labels(model.name, model.version)
            batcher = Batcher(model, config, histogram.observe)
            self.batchers[key] = batcher
        return batcher

    def forget(self, model: LoadedModel) -> None:
        """A model left memory: stop its prediction thread."""
        batcher = self.batchers.pop((model.name, model.version), None)
        if batcher is not None:
            batcher.close()

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        for observer in self.observers:
            observer.close()


def serving_context(request: Request) -> ServingContext:
    context: ServingContext = request.app.state.ferry.serving  # server/state.py
    return context
