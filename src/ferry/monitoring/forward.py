"""Push mode with store and forward: bundles wait in a spool folder until our server takes
them. Each push first spools the new bundle (written atomically), then sends every spooled
bundle, oldest first: accepted ones (2xx) are deleted, refused ones (4xx: a bad signature
will not get better) move to ``rejected/``, and on a connection error or a 5xx the rest stay
for the next push."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ferry.config.settings import Settings

log = logging.getLogger(__name__)

SPOOL_DIR = "telemetry-spool"
REJECTED_DIR = "rejected"
BUNDLE_MEDIA_TYPE = "application/gzip"
PUSH_PATH = "/api/v1/telemetry"


@dataclass(slots=True)
class PushResult:
    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    error: str = ""


def default_spool(settings: Settings) -> Path:
    return settings.home.expanduser() / SPOOL_DIR


def spooled(spool: Path) -> list[Path]:
    """Bundles waiting, oldest first (names start with their UTC time)."""
    return sorted(p for p in spool.glob("*.tgz") if p.is_file()) if spool.is_dir() else []


def forward(
    spool: Path, url: str, *, api_key: str | None = None, timeout: float = 30.0
) -> PushResult:
    """Send every spooled bundle to ``url`` (a Ferry server) in order."""
    result = PushResult()
    headers = {"content-type": BUNDLE_MEDIA_TYPE}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    pending = spooled(spool)
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as http:
        for index, bundle in enumerate(pending):
            try:
                response = http.post(PUSH_PATH, content=bundle.read_bytes(), headers=headers)
            except httpx.HTTPError as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                result.waiting = [p.name for p in pending[index:]]
                break
            if response.is_success:
                bundle.unlink()
                result.delivered.append(bundle.name)
            elif 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                rejected = spool / REJECTED_DIR
                rejected.mkdir(exist_ok=True)
                shutil.move(bundle, rejected / bundle.name)
                result.rejected.append(bundle.name)
                log.warning(
                    "telemetry bundle refused",
                    extra={"bundle": bundle.name, "status": response.status_code},
                )
            else:
                result.error = f"{url} answered {response.status_code}"
                result.waiting = [p.name for p in pending[index:]]
                break
    return result
