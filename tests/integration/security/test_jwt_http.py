"""JWTs against a real ``ferry server``: RS256/ES256 keys fetched from a JWKS URL (a loopback
server in this test), HS256 with a shared secret; bad signature, wrong audience, expired and
``alg: none`` tokens are 401; a valid token without the scope is 403."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.integration.security.conftest import Home, StartServer

pytestmark = pytest.mark.integration

SECRET = "hs256-shared-secret-for-the-test-server-0123"
ISSUER = "https://idp.test"
AUDIENCE = "ferry-api"
ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


class Keys:
    rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec = ec.generate_private_key(ec.SECP256R1())

    @classmethod
    def jwks(cls) -> bytes:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(cls.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(cls.ec.public_key()))
        keys = [{**rsa_jwk, "kid": "r1", "alg": "RS256"}, {**ec_jwk, "kid": "e1", "alg": "ES256"}]
        return json.dumps({"keys": keys}).encode()


@pytest.fixture
def jwks_url() -> Iterator[str]:
    body = Keys.jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "sub": "svc-billing",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 600,
        "scope": "predict:iris",
    }
    return {**base, **overrides}


def unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def test_jwts(home: Home, start_server: StartServer, jwks_url: str) -> None:
    url = start_server(
        home,
        "--auth",
        "--workers",
        "1",
        FERRY_JWT_SECRET=SECRET,
        FERRY_JWT_JWKS=jwks_url,
        FERRY_JWT_ISSUER=ISSUER,
        FERRY_JWT_AUDIENCE=AUDIENCE,
    )

    def predict(token: str, model: str = "iris") -> httpx.Response:
        return httpx.post(
            f"{url}/v1/models/{model}/predict",
            json=ROWS,
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )

    good = {
        "HS256": jwt.encode(claims(), SECRET, algorithm="HS256"),
        "RS256": jwt.encode(claims(), Keys.rsa, algorithm="RS256", headers={"kid": "r1"}),
        "ES256": jwt.encode(claims(), Keys.ec, algorithm="ES256", headers={"kid": "e1"}),
    }
    for alg, token in good.items():
        answer = predict(token)
        assert answer.status_code == 200, (alg, answer.text)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "bad signature": jwt.encode(claims(), forger, algorithm="RS256", headers={"kid": "r1"}),
        "bad HS256 signature": jwt.encode(claims(), SECRET[::-1], algorithm="HS256"),
        "wrong audience": jwt.encode(claims(aud="other-api"), SECRET, algorithm="HS256"),
        "wrong issuer": jwt.encode(claims(iss="https://evil.test"), SECRET, algorithm="HS256"),
        "expired": jwt.encode(claims(exp=int(time.time()) - 300), SECRET, algorithm="HS256"),
        "alg none": unsigned(claims()),
    }
    for case, token in bad.items():
        answer = predict(token)
        assert answer.status_code == 401, (case, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
    assert predict(good["RS256"], model="open-elsewhere").status_code == 403
    reader = jwt.encode(claims(scope="read:iris"), SECRET, algorithm="HS256")
    assert predict(reader).status_code == 403
    assert httpx.get(
        f"{url}/api/v1/models/iris", headers={"authorization": f"Bearer {reader}"}
    ).is_success
