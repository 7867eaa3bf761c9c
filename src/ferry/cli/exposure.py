"""The one rule for when a server needs keys (``ferry server`` and ``ferry serve``): on with
--auth or FERRY_AUTH=required; on whenever the bind address is not a loopback one (a host
name may resolve anywhere), unless auth is switched off explicitly (``--insecure`` /
``--no-auth`` / FERRY_AUTH=off), which then earns a loud warning at start."""

from __future__ import annotations

import ipaddress

import typer

__all__ = ["auth_mode", "is_loopback"]


def auth_mode(
    host: str, *, auth: bool, insecure: bool, setting: str, off_flag: str = "--insecure"
) -> tuple[bool, str | None]:
    """Whether auth is on, and the warning to print when it is off on a public address."""
    if auth and insecure:
        raise typer.BadParameter(
            f"--auth and {off_flag} contradict each other", param_hint="--auth"
        )
    if auth or setting == "required":
        return True, None
    if is_loopback(host):
        return False, None
    if insecure or setting == "off":
        return False, (
            f"  WARNING: auth is OFF on {host}: anyone who can reach this address can call "
            f"every model (and on `ferry server` upload models, which run code). Drop "
            f"{off_flag}/FERRY_AUTH=off to require API keys."
        )
    return True, None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
