"""When ``ferry server`` and ``ferry serve`` turn auth on: flags, FERRY_AUTH, and the address
they bind (one rule, ``ferry.cli.exposure``)."""

from __future__ import annotations

import pytest
import typer

from ferry.cli.exposure import auth_mode, is_loopback


@pytest.mark.parametrize(
    ("host", "auth", "insecure", "setting", "on", "warns"),
    [
        ("127.0.0.1", False, False, "auto", False, False),
        ("localhost", False, False, "auto", False, False),
        ("::1", False, False, "auto", False, False),
        ("127.0.0.1", True, False, "auto", True, False),
        ("127.0.0.1", False, False, "required", True, False),
        ("0.0.0.0", False, False, "auto", True, False),  # noqa: S104
        ("10.1.2.3", False, False, "auto", True, False),
        ("my-host.internal", False, False, "auto", True, False),  # a name may resolve anywhere
        ("0.0.0.0", False, True, "auto", False, True),  # noqa: S104
        ("0.0.0.0", False, False, "off", False, True),  # noqa: S104
        ("0.0.0.0", False, True, "required", True, False),  # noqa: S104 - required wins
    ],
)
def test_auth_mode(
    host: str, auth: bool, insecure: bool, setting: str, on: bool, warns: bool
) -> None:
    enabled, warning = auth_mode(host, auth=auth, insecure=insecure, setting=setting)
    assert enabled is on
    assert (warning is not None) is warns
    if warning:
        assert "WARNING: auth is OFF" in warning


def test_contradiction() -> None:
    with pytest.raises(typer.BadParameter):
        auth_mode("0.0.0.0", auth=True, insecure=True, setting="auto")  # noqa: S104


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.2")
    assert is_loopback("[::1]")
    assert not is_loopback("192.168.1.10")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])  # noqa: S104
def test_serve_off_loopback_needs_an_explicit_no_auth(host: str) -> None:
    assert auth_mode(host, auth=False, insecure=False, setting="auto", off_flag="--no-auth") == (
        True,
        None,
    )
    enabled, warning = auth_mode(
        host, auth=False, insecure=True, setting="auto", off_flag="--no-auth"
    )
    assert not enabled
    assert warning is not None
    assert f"WARNING: auth is OFF on {host}" in warning
    assert "--no-auth" in warning
