"""Settings and paths, importable by every layer."""

from ferry.config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
