"""The security tables' database (api keys, usage, quota counters): its own ``Database``."""

from __future__ import annotations

from ferry.db.database import Database


class SecurityDatabase(Database):
    what = "the security tables"


__all__ = ["SecurityDatabase"]
