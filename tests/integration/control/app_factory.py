"""``uvicorn --factory tests.integration.control.app_factory:create``: the control plane alone.

The registry lives under ``FERRY_HOME`` (or ``FERRY_DATABASE_URL`` / ``FERRY_ARTIFACTS``);
``FERRY_MAX_UPLOAD_BYTES`` caps uploads. Stands in for ``ferry server`` in these tests so they
exercise only the control plane and the registry.
"""

from __future__ import annotations

from fastapi import FastAPI

from ferry.config.settings import get_settings
from ferry.registry import Registry
from ferry.server.app import create_app
from ferry.server.control import ControlConfig, control_router


def create() -> FastAPI:
    settings = get_settings()
    registry = Registry.from_settings(settings)
    config = ControlConfig.from_settings(settings)
    router = control_router(lambda: registry, config=config)
    return create_app([], settings, routers=[router], title="Ferry control plane (tests)")
