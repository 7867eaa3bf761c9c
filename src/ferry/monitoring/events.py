"""Moved to ``ferry.db.events`` (issue 14: security and monitoring both use the event and are
siblings); this re-export stays until the server modules that still import it are moved."""

from __future__ import annotations

from ferry.db.events import PRINCIPAL_SCOPE_KEY, PredictionEvent, PredictionObserver

__all__ = ["PRINCIPAL_SCOPE_KEY", "PredictionEvent", "PredictionObserver"]
