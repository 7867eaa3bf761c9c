"""The FERRY_HOME layout: where the embedded database, artifacts, caches and logs live."""

from __future__ import annotations

from pathlib import Path

from ferry.config.settings import Settings

DATABASE_FILE = "ferry.db"
ARTIFACTS_DIR = "artifacts"
CACHE_DIR = "cache"
LOGS_DIR = "logs"


def database_path(home: Path) -> Path:
    """The embedded SQLite registry database."""
    return home / DATABASE_FILE


def artifacts_dir(home: Path) -> Path:
    """The embedded (local folder) artifact store."""
    return home / ARTIFACTS_DIR


def cache_dir(home: Path) -> Path:
    """Materialized bundles and other re-creatable files."""
    return home / CACHE_DIR


def logs_dir(home: Path) -> Path:
    return home / LOGS_DIR


def database_url(settings: Settings) -> str:
    """``FERRY_DATABASE_URL``, else the SQLite file under ``FERRY_HOME``."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{database_path(settings.home.expanduser().resolve())}"


def artifacts_url(settings: Settings) -> str:
    """``FERRY_ARTIFACTS``, else the artifacts folder under ``FERRY_HOME``."""
    if settings.artifacts:
        return settings.artifacts
    return str(artifacts_dir(settings.home.expanduser().resolve()))
