"""App factories for uvicorn worker processes, configured through the environment."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from ferry.errors import ConfigError

SERVE_PATH_ENV = "FERRY_SERVE_PATH"
SERVE_NAME_ENV = "FERRY_SERVE_NAME"


def serve_app() -> FastAPI:
    """The single-model app of ``ferry serve``, rebuilt in each worker process."""
    from ferry.model.loaded import load
    from ferry.server.app import create_app

    path = os.environ.get(SERVE_PATH_ENV)
    if not path:
        raise ConfigError(f"{SERVE_PATH_ENV} is not set")
    model = load(Path(path))
    name = os.environ.get(SERVE_NAME_ENV)
    if name:
        model.manifest = model.manifest.model_copy(update={"name": name})
    return create_app([model])
