"""Per-app serving state, created in create_app() and reached through ``request.app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ferry.config.settings import Settings
from ferry.monitoring.metrics import ServingMetrics
from ferry.server.serving.repository import ModelRepository


@dataclass(slots=True)
class ServingContext:
    repository: ModelRepository
    metrics: ServingMetrics
    settings: Settings

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes


def serving_context(request: Request) -> ServingContext:
    context: ServingContext = request.app.state.serving
    return context
