"""Helpers for the auth tests: Cognito-like constants, a token forger, a clock and a counting JWKS server."""
from __future__ import annotations

import base64
import json
import time

import jwt
from aiohttp import web
from jwt.algorithms import RSAAlgorithm

REGION = "eu-west-1"
POOL = "eu-west-1_TestPool1"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"
CLIENT = "client123abc"


def jwk(key, kid: str) -> dict:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}


def b64(data: bytes | str) -> str:
    return base64.urlsafe_b64encode(data.encode() if isinstance(data, str) else data).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    """A Cognito access token's claims for ISSUER and CLIENT; None values remove a claim."""
    now = int(time.time())
    base = {
        "sub": "9f1c2d3e-0000-4000-8000-000000000001", "iss": ISSUER, "client_id": CLIENT, "token_use": "access",
        "scope": "aws.cognito.signin.user.admin", "auth_time": now, "iat": now, "exp": now + 3600,
        "jti": "jti-1", "username": "alice",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key, payload: dict, kid: str | None = "k1", **headers) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={**({"kid": kid} if kid else {}), **headers})


class Clock:
    """Stands in for time.monotonic in plugins.auth.jwks, so tests can step past the penalty box."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class JwksServer:
    """A JWKS endpoint on a free port that counts its hits (and keeps their headers); `stop()` takes it down."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.hits: list[str] = []
        self.headers: list[dict] = []
        self.server = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        self.headers.append(dict(request.headers))
        return web.json_response(self.document)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/pool/.well-known/jwks.json"))

    async def stop(self) -> None:
        await self.server.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def raw_token(header: dict, payload: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header))}.{b64(json.dumps(payload))}.{b64(signature)}"
