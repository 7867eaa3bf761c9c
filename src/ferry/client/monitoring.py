"""Monitoring calls over HTTP: the prediction log, feedback and live performance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ferry.client.client import Client


def predictions(
    client: Client,
    name: str,
    *,
    since: str | None = None,
    until: str | None = None,
    version: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Logged requests of ``name``, newest first (``since``/``until``: ``1h`` or ISO times)."""
    params: dict[str, str | int] = {"limit": limit, "offset": offset}
    for key, value in (("since", since), ("until", until), ("version", version)):
        if value:
            params[key] = value
    answer = client._request("GET", f"/api/v1/models/{name}/predictions", params=params).json()
    items: list[dict[str, Any]] = answer["items"]
    return items


def prediction(client: Client, request_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client._request("GET", f"/api/v1/predictions/{request_id}").json()
    return answer


def feedback(client: Client, name: str, items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Send ``(request_id, truth)`` pairs for ``name``'s logged predictions, all or none."""
    body = {"items": [{"request_id": rid, "truth": truth} for rid, truth in items]}
    answer: dict[str, Any] = client._request(
        "POST", f"/v1/models/{name}/feedback", json=body
    ).json()
    return answer


def performance(client: Client, name: str, window: str | None = None) -> dict[str, Any]:
    params = {"window": window} if window else {}
    answer: dict[str, Any] = client._request(
        "GET", f"/v1/models/{name}/performance", params=params
    ).json()
    return answer
