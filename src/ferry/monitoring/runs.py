"""What the drift API answers (shared by the server routes and the client)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ferry.monitoring.drift import DriftReport


class DriftRun(BaseModel):
    id: int | None = Field(description="The stored report's id (None when not stored).")
    report: DriftReport
    alert: Literal["queued"] | None = Field(
        default=None,
        description="'queued' when a drift alert is being posted to the webhook (in the "
        "background, with retries); None when none is sent.",
    )


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
