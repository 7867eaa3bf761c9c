"""Objects with threads or connections reset themselves in a forked worker.

``ferry server --workers N`` builds the app, then forks: threads do not survive a fork and a
parent's pooled connections must not be shared. Instead of comparing ``os.getpid()`` on every
call (a system call on the request path), each such object registers a reset hook here.
"""

from __future__ import annotations

import os
import weakref
from typing import Any


def reset_after_fork(owner: Any, method: str) -> None:
    """Call ``owner.<method>()`` in each child process right after a fork (while it lives)."""
    ref = weakref.ref(owner)

    def hook() -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    os.register_at_fork(after_in_child=hook)
