"""JWTs from an external identity provider: RS256/ES256 checked against a JWKS (a file, or a
URL fetched with a bounded timeout and cached), or HS256 with a shared secret; issuer and
audience checked when configured; ``exp`` required, and ``exp``, ``nbf`` and ``iat`` must be
JSON numbers (PyJWT alone accepts ``"exp": "1900000000"``); with FERRY_JWT_MAX_LIFETIME, a
token living longer (``exp - iat``, or ``exp - now`` without ``iat``) is refused; a claim
(``scope`` by default, a space-separated string or a list) carries Ferry scopes. ``alg: none``
never verifies: only the algorithms a configured key can check are accepted.

Quotas: every subject gets FERRY_JWT_REQUESTS_PER_MINUTE / FERRY_JWT_ROWS_PER_DAY (unset:
unlimited); a token's ``ferry_rpm`` / ``ferry_rows_per_day`` claims may lower its own limits,
never raise them. The principal is ``jwt:<subject>``, so a subject's tokens share one count."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.config.settings import Settings
from ferry.errors import ConfigError, InvalidRequest, Unauthorized
from ferry.security.identity import Principal
from ferry.security.scopes import Scope

if TYPE_CHECKING:
    import jwt

ASYMMETRIC = ["RS256", "ES256"]
JWKS_TIMEOUT_SECONDS = 5.0
JWKS_CACHE_SECONDS = 300
TIME_CLAIMS = ("exp", "nbf", "iat")
RPM_CLAIM = "ferry_rpm"
ROWS_CLAIM = "ferry_rows_per_day"


@dataclass(frozen=True, slots=True)
class JwtConfig:
    secret: str | None = None
    jwks: str | None = None  # file path or http(s) URL
    issuer: str | None = None
    audience: str | None = None
    scopes_claim: str = "scope"
    requests_per_minute: int | None = None  # every subject's limits; None: unlimited
    rows_per_day: int | None = None
    max_lifetime: float | None = None  # seconds; None: unbounded

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtConfig | None:
        if not settings.jwt_secret and not settings.jwt_jwks:
            return None
        return cls(
            settings.jwt_secret,
            settings.jwt_jwks,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.jwt_scopes_claim,
            settings.jwt_requests_per_minute,
            settings.jwt_rows_per_day,
            settings.jwt_max_lifetime,
        )


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._jwk_client: jwt.PyJWKClient | None = None
        self._jwk_set: jwt.PyJWKSet | None = None
        if config.jwks:
            if config.jwks.startswith(("http://", "https://")):
                import jwt

                self._jwk_client = jwt.PyJWKClient(
                    config.jwks, lifespan=JWKS_CACHE_SECONDS, timeout=int(JWKS_TIMEOUT_SECONDS)
                )
            else:
                self._jwk_set = _read_jwks(Path(config.jwks).expanduser())

    def verify(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}", reason="malformed") from exc
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self.config.secret:
            key = self.config.secret
        elif alg in ASYMMETRIC and (self._jwk_client or self._jwk_set):
            key = self._signing_key(token, header)
        else:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted", reason="algorithm")
        options = {"require": ["exp", "sub"], "verify_aud": self.config.audience is not None}
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options=options,  # type: ignore[arg-type]
                leeway=30,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired", reason="expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", reason="invalid") from exc
        self._check_times(claims)
        return Principal(
            id=f"jwt:{claims['sub']}"[:256],
            name=str(claims["sub"]),
            kind="jwt",
            scopes=self._scopes(claims),
            expires_at=float(claims["exp"]),
            requests_per_minute=_limit(claims, RPM_CLAIM, self.config.requests_per_minute),
            rows_per_day=_limit(claims, ROWS_CLAIM, self.config.rows_per_day),
        )

    def _check_times(self, claims: dict[str, Any]) -> None:
        for claim in TIME_CLAIMS:
            value = claims.get(claim)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if claim in claims and not (number and math.isfinite(value)):  # type: ignore[arg-type]
                raise Unauthorized(
                    f"invalid token: the {claim!r} claim must be a number (seconds since the "
                    f"epoch), got {type(value).__name__}",
                    reason="invalid",
                    claim=claim,
                )
        limit = self.config.max_lifetime
        if limit is None:
            return
        start = claims["iat"] if "iat" in claims else time.time()
        lifetime = float(claims["exp"]) - float(start)
        if lifetime > limit:
            raise Unauthorized(
                f"token lifetime {lifetime:.0f} s is over this server's limit of {limit:.0f} s "
                "(FERRY_JWT_MAX_LIFETIME)",
                reason="lifetime",
                claim="exp",
            )

    def _signing_key(self, token: str, header: dict[str, Any]) -> Any:
        import jwt

        kid = header.get("kid")
        try:
            if self._jwk_client is not None:
                return self._jwk_client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as exc:
            raise Unauthorized(f"no signing key for the token: {exc}", reason="key") from exc
        assert self._jwk_set is not None
        keys = [k for k in self._jwk_set.keys if kid is None or k.key_id == kid]
        if not keys:
            raise Unauthorized(f"no signing key with kid {kid!r}", reason="key")
        return keys[0].key

    def _scopes(self, claims: dict[str, Any]) -> tuple[Scope, ...]:
        raw = claims.get(self.config.scopes_claim, [])
        items = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        scopes: list[Scope] = []
        for item in items:
            try:
                scopes.append(Scope.parse(str(item)))
            except InvalidRequest:
                continue  # the provider's other scopes (openid, email ...) are not Ferry's
        return tuple(scopes)


def _limit(claims: dict[str, Any], claim: str, configured: int | None) -> int | None:
    """The lower of the configured limit and the token's claim (a claim never raises it)."""
    raw = claims.get(claim)
    if raw is None:
        return configured
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)  # some providers carry custom claims as strings only
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise Unauthorized(
            f"invalid token: the {claim!r} claim must be a whole number >= 1, got {raw!r}",
            reason="invalid",
            claim=claim,
        )
    return raw if configured is None else min(raw, configured)


def _read_jwks(path: Path) -> jwt.PyJWKSet:
    import jwt

    try:
        return jwt.PyJWKSet.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise ConfigError(f"cannot read the JWKS file {path}: {exc}", path=str(path)) from exc
