"""Who is calling: a Principal (an API key or a JWT's subject) with its scopes and limits."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.security.scopes import Requirement, Scope, allows

# the ASGI scope key under which the auth layer leaves the authenticated Principal, for the
# few routes that decide on a field of the body (an upload's trust=true needs admin)
IDENTITY_SCOPE_KEY = "ferry.identity"


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
