"""The drift half of ``Client``: reference profiles and drift runs on the registry API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from ferry.client.registry import API, _model_path, _parse, _version_path
from ferry.monitoring.profile import ReferenceProfile
from ferry.monitoring.runs import DriftHistory, DriftRun

if TYPE_CHECKING:
    import pandas as pd

# a drift run over a large window computes on the server before it answers
DRIFT_READ_TIMEOUT = 300.0


class DriftCalls(ABC):
    @abstractmethod
    def _request(
        self, method: str, path: str, *, read_timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request; an error answer raises the FerryError it names."""

    def profile(self, name: str, version: int) -> ReferenceProfile:
        """The version's reference profile."""
        return _parse(
            ReferenceProfile, self._request("GET", f"{_version_path(name, version)}/profile")
        )

    def drift(
        self,
        name: str,
        version: int,
        live: pd.DataFrame | None = None,
        *,
        window_seconds: float | None = None,
        store: bool = True,
        alert: bool = True,
    ) -> DriftRun:
        """Compare ``live`` rows (or the server's last ``window_seconds`` of predictions) with
        the version's reference; the server stores the report and alerts on drift."""
        body: dict[str, Any] = {"store": store, "alert": alert}
        if live is not None:
            from ferry.model.example import frame_to_split

            body["dataframe_split"] = frame_to_split(live)
        if window_seconds is not None:
            body["window_seconds"] = window_seconds
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        answer = self._request(
            "POST",
            f"{_version_path(name, version)}/drift",
            content=content,
            headers={"content-type": "application/json"},
            read_timeout=DRIFT_READ_TIMEOUT,
        )
        return _parse(DriftRun, answer)

    def drift_history(
        self, name: str, *, version: int | None = None, limit: int = 100
    ) -> DriftHistory:
        params: dict[str, str] = {"limit": str(limit)}
        if version is not None:
            params["version"] = str(version)
        answer = self._request("GET", f"{_model_path(name)}/drift", params=params)
        return _parse(DriftHistory, answer)

    def drift_report(self, report_id: int) -> DriftRun:
        return _parse(DriftRun, self._request("GET", f"{API}/drift/{report_id}"))

    def drift_report_html(self, report_id: int) -> str:
        return self._request("GET", f"{API}/drift/{report_id}/report.html").text
