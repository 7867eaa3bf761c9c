"""What the data plane tells its observers about each prediction request.

Observers (the prediction log, usage metering) are called on the event loop once a request
is answered, so ``observe`` must only hand the event over (to a queue, a counter) and return.
An app with no observers builds no events: the hot path pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ferry.model.signature import Batch


@dataclass(slots=True)  # not frozen: a frozen __init__ cost 2 us a request; never mutate one
class PredictionEvent:
    request_id: str
    model: str  # "-" when the request failed before a model was found
    version: str
    protocol: str  # native | mlflow | v2
    status: int
    rows: int
    seconds: float  # parsing to serialization
    timestamp: float  # unix time the request arrived
    principal: str | None = None
    error_code: str | None = None
    inputs: Batch | None = None  # the validated rows, when the request got that far
    outputs: Mapping[str, np.ndarray] | None = None  # what the model answered, on success
    client_request_id: str | None = None  # the caller's X-Request-ID, when well-formed


class PredictionObserver(Protocol):
    def observe(self, event: PredictionEvent) -> None:
        """Take note of one answered request; never block, never raise."""

    def close(self) -> None:
        """Flush and stop; called once when the app shuts down."""
