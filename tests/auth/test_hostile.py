"""The hostile-token suite: each token is answered 401 with an RFC 6750 challenge, and nothing else
happens: no handler runs, no RSA work is done unless the token got as far as its signature, no key
is fetched from anywhere but the configured JWKS, and that only for a kid it does not know."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization

from gateway.app import create_app
from tests.auth.helpers import CLIENT, REGION, JwksServer, b64, bearer, claims, jwk, raw_token, sign

NOW = int(time.time())
DUPLICATE_SUB = '{"sub": "a", "sub": "b", "exp": 9999999999}'


def hs256_with_public_key(key, other):
    """The classic key-confusion attack: HMAC keyed with the RSA public key's PEM."""
    secret = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'k1'}))}.{b64(json.dumps(claims()))}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def tampered(key, other):
    header, _, signature = sign(key, claims()).split(".")
    return f"{header}.{b64(json.dumps(claims(sub='someone-else')))}.{signature}"


def nine_kib(key, other):
    return sign(key, claims(padding="x" * 9 * 1024))


# name -> (forge(signing_key, other_key), reaches the signature check)
HOSTILE = {
    "alg none, empty signature": (lambda k, o: raw_token({"alg": "none", "kid": "k1"}, claims()), False),
    "alg none, with a signature": (lambda k, o: raw_token({"alg": "none", "kid": "k1"}, claims(), b"x" * 8), False),
    "alg NONE": (lambda k, o: raw_token({"alg": "NONE", "kid": "k1"}, claims(), b"x"), False),
    "HS256 keyed with the RSA public key": (hs256_with_public_key, False),
    "RS512": (lambda k, o: raw_token({"alg": "RS512", "kid": "k1"}, claims(), b"x" * 256), False),
    "PS256": (lambda k, o: raw_token({"alg": "PS256", "kid": "k1"}, claims(), b"x" * 256), False),
    "RS256 by another key with the right kid": (lambda k, o: sign(o, claims()), True),
    "missing kid": (lambda k, o: sign(k, claims(), kid=None), False),
    "expired": (lambda k, o: sign(k, claims(iat=NOW - 7200, exp=NOW - 10)), False),
    "no exp": (lambda k, o: sign(k, claims(exp=None)), False),
    "exp as a string": (lambda k, o: sign(k, claims(exp=str(NOW + 3600))), False),
    "exp infinite": (lambda k, o: raw_token({"alg": "RS256", "kid": "k1"}, claims(exp=1e400), b"x"), False),
    "nbf in the future": (lambda k, o: sign(k, claims(nbf=NOW + 600)), False),
    "wrong iss (other pool)": (lambda k, o: sign(k, claims(iss=f"https://cognito-idp.{REGION}.amazonaws.com/"
                                                          f"{REGION}_OtherPool")), False),
    "wrong iss (http)": (lambda k, o: sign(k, claims(iss=claims()["iss"].replace("https", "http"))), False),
    "wrong client_id": (lambda k, o: sign(k, claims(client_id="not-ours")), False),
    "id token with the wrong aud": (lambda k, o: sign(k, claims(token_use="id", client_id=None, aud="not-ours")),
                                    False),
    "id token where access is required": (lambda k, o: sign(k, claims(token_use="id", client_id=None, aud=CLIENT)),
                                          False),
    "token_use missing": (lambda k, o: sign(k, claims(token_use=None)), False),
    "payload tampered": (tampered, True),
    "two parts": (lambda k, o: ".".join(sign(k, claims()).split(".")[:2]), False),
    "four parts": (lambda k, o: sign(k, claims()) + ".AAAA", False),
    "empty signature part": (lambda k, o: sign(k, claims()).rsplit(".", 1)[0] + ".", False),
    "non-JSON header": (lambda k, o: f"{b64('not json')}.{sign(k, claims()).split('.', 1)[1]}", False),
    "header a JSON array": (lambda k, o: f"{b64('[1]')}.{sign(k, claims()).split('.', 1)[1]}", False),
    "duplicate claim names": (lambda k, o: f"{sign(k, claims()).split('.')[0]}.{b64(DUPLICATE_SUB)}.AAAA", False),
    "crit header": (lambda k, o: sign(k, claims(), crit=["exp"]), False),
    "non-ASCII": (lambda k, o: "é" + sign(k, claims()), False),
    "not base64url": (lambda k, o: sign(k, claims()).replace(".", "+.", 1), False),
    "9 KiB token": (nine_kib, False),
}

# Kids the JWKS does not know may cost one refetch, of the configured URL and nothing else.
UNKNOWN_KIDS = {
    "unknown kid": "k2",
    "kid with path characters": "../../../../etc/passwd",
    "kid that is a URL": "https://attacker.example/jwks.json",
}

# Key-bearing headers pointing at an attacker's keys; the attacker signs with its own key.
KEY_HEADERS = ("jku", "x5u", "jwk", "x5c")


@pytest.fixture
async def client(aiohttp_client, base_env, cognito_env):
    """Cognito mode, served with room for a 9 KiB header: aiohttp's parser alone would refuse it with 400
    before the gateway sees it, and the point is that the gateway refuses it too."""
    server = TestServer(create_app({**base_env, **cognito_env}))
    await server.start_server(max_field_size=16 * 1024)
    return await aiohttp_client(server)


@pytest.fixture
async def attacker(aiohttp_server, other_key):
    """The attacker's own JWKS, which must never be fetched."""
    server = JwksServer({"keys": [jwk(other_key, "k1")]})
    app = web.Application()
    app.router.add_get("/pool/.well-known/jwks.json", server.handle)
    server.server = await aiohttp_server(app)
    return server


async def refused(client, token: str) -> None:
    response = await client.get("/probe/me", headers=bearer(token))
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="gateway", error="invalid_token", error_description="')
    body = await response.text()
    assert token not in body and token.split(".")[0] not in body
    assert json.loads(body)["status"] == 401


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_token(name, client, jwks_server, signing_key, other_key, clock, rsa_calls):
    forge, reaches_signature = HOSTILE[name]
    clock.advance(60)  # out of the penalty box: any fetch this token could cause would happen
    await refused(client, forge(signing_key, other_key))
    assert len(jwks_server.hits) == 1  # the start-up fetch only
    assert len(rsa_calls) == (1 if reaches_signature else 0)


@pytest.mark.parametrize("kid", UNKNOWN_KIDS.values(), ids=UNKNOWN_KIDS.keys())
async def test_unknown_kid(kid, client, jwks_server, signing_key, clock, rsa_calls):
    clock.advance(60)
    await refused(client, sign(signing_key, claims(), kid=kid))
    assert jwks_server.hits == ["/pool/.well-known/jwks.json"] * 2  # start-up, one refetch
    assert rsa_calls == []


@pytest.mark.parametrize("header", KEY_HEADERS)
async def test_key_bearing_headers_are_ignored(header, client, jwks_server, attacker, other_key, clock):
    values = {"jku": attacker.url, "x5u": attacker.url, "jwk": jwk(other_key, "k1"), "x5c": ["MIIB"]}
    clock.advance(60)
    await refused(client, sign(other_key, claims(), **{header: values[header]}))
    assert attacker.hits == []
    assert len(jwks_server.hits) == 1


async def test_a_verified_token_is_not_verified_again(client, signing_key, rsa_calls):
    token = sign(signing_key, claims())
    for _ in range(3):
        assert (await client.get("/probe/me", headers=bearer(token))).status == 200
    assert len(rsa_calls) == 1
