"""Who is calling: a Principal (an API key or a JWT's subject) with its scopes and limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry.security.scopes import Requirement, Scope, allows

# the one ASGI scope key under which the auth layer leaves the authenticated Principal: for
# attribution (usage, audit, the prediction log name its id) and for the few routes that
# decide on a body field (an upload's trust=true needs trust); absent when auth is off
PRINCIPAL_SCOPE_KEY = "ferry.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # an API key's id, or ``jwt:<subject>``; what usage and the audit log record
    name: str  # the key's name or the token's subject
    kind: str  # "key" | "jwt"
    scopes: tuple[Scope, ...]
    expires_at: float | None = None  # unix seconds
    requests_per_minute: int | None = None
    rows_per_day: int | None = None

    def may(self, requirement: Requirement) -> bool:
        return allows(self.scopes, requirement)

    @property
    def limited(self) -> bool:
        return self.requests_per_minute is not None or self.rows_per_day is not None


def principal_in(scope: Mapping[str, Any]) -> Principal | None:
    """The authenticated caller of a request (its ASGI scope); None when auth is off."""
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else None


def principal_id(scope: Mapping[str, Any]) -> str | None:
    """What a request is attributed to: the caller's key id or ``jwt:<subject>``."""
    principal = principal_in(scope)
    return None if principal is None else principal.id
