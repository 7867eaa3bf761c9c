"""Connection limits: the default cap from the descriptor limit, the minimum body bytes per
window, and raising the descriptor limit (in a subprocess: the test run's own stays)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ferry.config.settings import Settings
from ferry.server.connections import (
    ConnectionLimits,
    bounded_protocol,
    default_connection_cap,
)


@pytest.mark.parametrize(
    ("descriptors", "cap"),
    [(20_000, 18_000), (1_048_576, 943_719), (1024, 768), (100, 16)],
)
def test_the_default_cap_leaves_descriptors_for_files_and_databases(
    descriptors: int, cap: int
) -> None:
    assert default_connection_cap(descriptors) == cap


def test_limits_come_from_settings_with_the_cap_sized_from_descriptors() -> None:
    settings = Settings(header_timeout_seconds=3, body_timeout_seconds=4, min_body_rate=100)
    limits = ConnectionLimits.from_settings(settings, descriptors=20_000)
    assert limits == ConnectionLimits(3.0, 4.0, 100.0, 18_000)
    capped = ConnectionLimits.from_settings(Settings(max_connections=50), descriptors=20_000)
    assert capped.max_connections == 50


def test_a_body_window_needs_the_rate_and_at_least_one_byte() -> None:
    limits = ConnectionLimits(10.0, 10.0, 500.0, 100)
    assert limits.min_window_bytes(10.0) == 5000.0
    assert ConnectionLimits(10.0, 10.0, 0.0, 100).min_window_bytes(10.0) == 1.0


def test_each_server_gets_its_own_protocol_class() -> None:
    first = bounded_protocol(ConnectionLimits(1.0, 1.0, 1.0, 10))
    second = bounded_protocol(ConnectionLimits(2.0, 2.0, 2.0, 20))
    assert first.limits.max_connections == 10  # type: ignore[attr-defined]
    assert second.limits.max_connections == 20  # type: ignore[attr-defined]


def test_the_descriptor_limit_is_raised_to_the_hard_limit() -> None:
    code = textwrap.dedent(
        """
        import resource
        from ferry.server.connections import raise_descriptor_limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        now = raise_descriptor_limit()
        assert now == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0], (now, hard)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
