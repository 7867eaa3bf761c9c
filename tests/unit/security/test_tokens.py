"""JWT verification: HS256 with a shared secret, RS256/ES256 against a JWKS file, and every
way a token must be refused (bad signature, wrong audience or issuer, expired, ``alg: none``)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from ferry.config.settings import Settings
from ferry.errors import Unauthorized
from ferry.security.scopes import Action, Requirement
from ferry.security.tokens import JwtConfig, JwtVerifier

HS_SECRET = "a-shared-secret-that-is-long-enough-for-hs256"
ISSUER = "https://idp.example.test"
AUDIENCE = "ferry"


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        "scope": "openid predict:iris read",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> Path:
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    keys = [{**rsa_jwk, "kid": "rsa-1", "use": "sig"}, {**ec_jwk, "kid": "ec-1", "use": "sig"}]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return path


def hs_verifier() -> JwtVerifier:
    return JwtVerifier(JwtConfig(secret=HS_SECRET, issuer=ISSUER, audience=AUDIENCE))


def test_hs256_maps_the_scope_claim() -> None:
    principal = hs_verifier().verify(jwt.encode(claims(), HS_SECRET, algorithm="HS256"))
    assert (principal.id, principal.kind) == ("jwt:alice", "jwt")
    assert [str(s) for s in principal.scopes] == ["predict:iris", "read"]  # openid ignored
    assert principal.may(Requirement((Action.PREDICT,), "iris"))
    assert not principal.may(Requirement((Action.PUBLISH,), "iris"))


def test_list_claims_and_a_custom_claim_name() -> None:
    verifier = JwtVerifier(JwtConfig(secret=HS_SECRET, scopes_claim="ferry_scopes"))
    token = jwt.encode(
        claims(ferry_scopes=["publish:fraud-*"], aud=None), HS_SECRET, algorithm="HS256"
    )
    assert [str(s) for s in verifier.verify(token).scopes] == ["publish:fraud-*"]


def test_a_token_may_carry_the_trust_scope() -> None:
    token = jwt.encode(claims(scope="publish:team-* trust:team-*"), HS_SECRET, algorithm="HS256")
    principal = hs_verifier().verify(token)
    assert principal.may(Requirement((Action.TRUST,), "team-a"))
    assert not principal.may(Requirement((Action.TRUST,), "other"))


@pytest.mark.parametrize(("alg", "kid"), [("RS256", "rsa-1"), ("ES256", "ec-1")])
def test_asymmetric_tokens_against_a_jwks_file(
    jwks_file: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    alg: str,
    kid: str,
) -> None:
    verifier = JwtVerifier(JwtConfig(jwks=str(jwks_file), issuer=ISSUER, audience=AUDIENCE))
    key = rsa_key if alg == "RS256" else ec_key
    token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
    assert verifier.verify(token).name == "alice"
    other = (
        rsa.generate_private_key(65537, 2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    forged = jwt.encode(claims(), other, algorithm=alg, headers={"kid": kid})
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier.verify(forged)


def _unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _token(case: str) -> str:
    """Made when the test runs (a token made at collection could expire before it does)."""
    now = int(time.time())
    return {
        "bad-signature": lambda: jwt.encode(claims(), "the-wrong-secret-of-length-32!!!", "HS256"),
        "wrong-audience": lambda: jwt.encode(claims(aud="someone-else"), HS_SECRET, "HS256"),
        "wrong-issuer": lambda: jwt.encode(claims(iss="https://evil.test"), HS_SECRET, "HS256"),
        "expired": lambda: jwt.encode(claims(exp=now - 120), HS_SECRET, "HS256"),
        "no-exp": lambda: jwt.encode(claims(exp=None), HS_SECRET, "HS256"),
        "alg-none": lambda: _unsigned(claims()),
        "junk": lambda: "eyJ.not-a.token",
    }[case]()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad-signature", "invalid"),
        ("wrong-audience", "invalid"),
        ("wrong-issuer", "invalid"),
        ("expired", "expired"),
        ("no-exp", "invalid"),  # exp is required
        ("alg-none", "algorithm"),
        ("junk", "malformed"),
    ],
)
def test_refused(case: str, reason: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        hs_verifier().verify(_token(case))
    assert caught.value.details["reason"] == reason


def test_hs256_refused_when_only_a_jwks_is_configured(jwks_file: Path) -> None:
    """The classic key-confusion attack: an HS256 token 'signed' with the public key."""
    verifier = JwtVerifier(JwtConfig(jwks=str(jwks_file)))
    with pytest.raises(Unauthorized, match="algorithm"):
        verifier.verify(jwt.encode(claims(), HS_SECRET, algorithm="HS256"))


def quota_verifier(rpm: int | None, rows: int | None) -> JwtVerifier:
    settings = Settings(
        jwt_secret=HS_SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_requests_per_minute=rpm,
        jwt_rows_per_day=rows,
    )
    config = JwtConfig.from_settings(settings)
    assert config is not None
    return JwtVerifier(config)


@pytest.mark.parametrize(
    ("configured", "claimed", "limits"),
    [
        ((None, None), {}, (None, None)),  # nothing set: unlimited, as before
        ((10, 1000), {}, (10, 1000)),  # every subject gets the configured limits
        ((10, 1000), {"ferry_rpm": 3, "ferry_rows_per_day": 50}, (3, 50)),  # claims lower them
        ((10, 1000), {"ferry_rpm": 50, "ferry_rows_per_day": 10**6}, (10, 1000)),  # never raise
        ((None, None), {"ferry_rpm": 5}, (5, None)),  # a claim limits an unlimited subject
        ((10, None), {"ferry_rpm": "4"}, (4, None)),  # providers that only carry strings
    ],
)
def test_jwt_quotas_from_settings_and_claims(
    configured: tuple[int | None, int | None],
    claimed: dict[str, Any],
    limits: tuple[int | None, int | None],
) -> None:
    token = jwt.encode(claims(**claimed), HS_SECRET, algorithm="HS256")
    principal = quota_verifier(*configured).verify(token)
    assert (principal.requests_per_minute, principal.rows_per_day) == limits
    assert principal.limited == (limits != (None, None))
    assert principal.id == "jwt:alice"  # counted per subject, whichever token it shows


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "many", [3]])
def test_a_bad_quota_claim_refuses_the_token(value: object) -> None:
    token = jwt.encode(claims(ferry_rpm=value), HS_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="ferry_rpm") as caught:
        quota_verifier(10, None).verify(token)
    assert caught.value.details["reason"] == "invalid"


def test_jwt_quota_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_JWT_REQUESTS_PER_MINUTE", "3")
    monkeypatch.setenv("FERRY_JWT_ROWS_PER_DAY", "100")
    settings = Settings()
    assert (settings.jwt_requests_per_minute, settings.jwt_rows_per_day) == (3, 100)
    monkeypatch.setenv("FERRY_JWT_REQUESTS_PER_MINUTE", "0")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "claim",
    [
        {"exp": str(int(time.time()) + 300)},  # PyJWT alone accepts a numeric string
        {"nbf": str(int(time.time()) - 10)},
        {"iat": str(int(time.time()))},
        {"iat": True},
    ],
)
def test_time_claims_must_be_numbers(claim: dict[str, Any]) -> None:
    token = jwt.encode(claims(**claim), HS_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized) as refused:
        hs_verifier().verify(token)
    [name] = claim
    # newer PyJWT releases refuse a numeric-string exp themselves, before Ferry's own check
    assert refused.value.details.get("claim", name) == name
    assert "must be a number" in refused.value.message or name in refused.value.message


def test_float_time_claims_are_numbers_too() -> None:
    now = time.time()
    token = jwt.encode(claims(exp=now + 300.5, iat=now, nbf=now - 1), HS_SECRET, algorithm="HS256")
    assert hs_verifier().verify(token).name == "alice"


def test_a_maximum_lifetime_refuses_longer_tokens() -> None:
    verifier = JwtVerifier(
        JwtConfig(secret=HS_SECRET, issuer=ISSUER, audience=AUDIENCE, max_lifetime=3600)
    )
    now = int(time.time())
    short = jwt.encode(claims(iat=now, exp=now + 3600), HS_SECRET, algorithm="HS256")
    assert verifier.verify(short).name == "alice"
    for long in (
        claims(iat=now, exp=now + 3601),
        claims(iat=None, exp=now + 7200),  # no iat: measured from now
        claims(iat=now - 86400, exp=now + 60),  # issued long ago, still valid: too long lived
    ):
        with pytest.raises(Unauthorized) as refused:
            verifier.verify(jwt.encode(long, HS_SECRET, algorithm="HS256"))
        assert refused.value.details["reason"] == "lifetime"
    no_exp = jwt.encode(claims(exp=None, iat=now), HS_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verifier.verify(no_exp)


def test_max_lifetime_comes_from_settings() -> None:
    config = JwtConfig.from_settings(Settings(jwt_secret=HS_SECRET, jwt_max_lifetime=900))
    assert config is not None
    assert config.max_lifetime == 900
    with pytest.raises(ValidationError):
        Settings(jwt_max_lifetime=0)
