"""What the drift API answers (shared by the server routes and the client)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ferry.monitoring.drift import DriftReport


class AlertDelivery(BaseModel):
    delivered: bool
    attempts: int
    status: int | None
    error: str = ""


class DriftRun(BaseModel):
    id: int | None = Field(description="The stored report's id (None when not stored).")
    report: DriftReport
    alert: AlertDelivery | None = None


class DriftSummary(BaseModel):
    id: int
    model: str
    version: int
    created_at: datetime
    live_rows: int
    drifted: bool
    drifted_features: list[str]


class DriftHistory(BaseModel):
    items: list[DriftSummary]
