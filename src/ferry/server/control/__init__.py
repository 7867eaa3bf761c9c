"""The control plane: the registry's REST API (models, versions, uploads, aliases, lineage).

Re-exports are resolved on first use, so ``python -m ferry.server.control.inspector`` (the
inspector child process) starts without importing FastAPI, the registry or the routes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferry.server.control.api import control_routes
    from ferry.server.control.config import ControlConfig
    from ferry.server.control.routing import RegistryProvider

__all__ = ["ControlConfig", "RegistryProvider", "control_routes"]

_EXPORTS: dict[str, str] = {
    "ControlConfig": "ferry.server.control.config",
    "RegistryProvider": "ferry.server.control.routing",
    "control_routes": "ferry.server.control.api",
}


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
