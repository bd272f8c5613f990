"""The JWKS cache: start-up fetch, refetch on unknown kids (single-flight, penalty box), timeouts and
one retry, and tokens with known kids verifying while the endpoint is down."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from plugins.auth.jwks import JwksError, RemoteKeySet, parse_keys
from tests.auth.helpers import bearer, claims, jwk, sign


async def status(client, token: str) -> int:
    return (await client.get("/probe/me", headers=bearer(token))).status


async def readiness(client) -> dict:
    return (await (await client.get("/health/ready")).json())["checks"]["jwks"]


async def test_known_kids_keep_verifying_while_the_endpoint_is_down(make_client, cognito_env, jwks_server,
                                                                    signing_key, other_key, clock, monkeypatch):
    client = await make_client(cognito_env)
    assert await status(client, sign(signing_key, claims(jti="before"))) == 200
    await jwks_server.stop()

    # fresh tokens (not in the verified-token cache) with the known kid still pass
    for n in range(3):
        assert await status(client, sign(signing_key, claims(jti=f"during-{n}"))) == 200

    gets = []
    get = RemoteKeySet._get

    async def counted_get(self):
        gets.append(self.url)
        return await get(self)

    monkeypatch.setattr(RemoteKeySet, "_get", counted_get)
    assert await status(client, sign(other_key, claims(), kid="k2")) == 401  # in the penalty box: no fetch
    assert gets == []
    clock.advance(11)
    results = await asyncio.gather(*(status(client, sign(other_key, claims(), kid=f"new-{n}")) for n in range(20)))
    assert set(results) == {401}
    assert len(gets) == 2  # one failing fetch (and its retry), shared by all twenty

    check = await readiness(client)
    assert check["status"] == "ok" and check["keys"] == 1
    assert await status(client, sign(signing_key, claims(jti="after"))) == 200


async def test_unknown_kids_refetch_at_most_once_per_penalty_period(make_client, cognito_env, jwks_server,
                                                                    signing_key, other_key, clock):
    client = await make_client(cognito_env)
    assert len(jwks_server.hits) == 1

    async def flood() -> None:
        tokens = [sign(other_key, claims(), kid=f"bogus-{n}") for n in range(50)]
        assert set(await asyncio.gather(*(status(client, token) for token in tokens))) == {401}

    await flood()
    assert len(jwks_server.hits) == 1  # within the start-up fetch's penalty period
    clock.advance(10.5)
    await flood()
    assert len(jwks_server.hits) == 2  # fifty unknown kids, one shared fetch
    clock.advance(5)
    await flood()
    assert len(jwks_server.hits) == 2
    clock.advance(6)
    await flood()
    assert len(jwks_server.hits) == 3


async def test_a_rotated_in_key_is_picked_up(make_client, cognito_env, jwks_server, signing_key, other_key, clock):
    client = await make_client(cognito_env)
    jwks_server.document = {"keys": [jwk(signing_key, "k1"), jwk(other_key, "k2")]}
    clock.advance(11)
    assert await status(client, sign(other_key, claims(), kid="k2")) == 200
    assert await status(client, sign(signing_key, claims())) == 200
    assert len(jwks_server.hits) == 2


async def test_start_up_without_the_endpoint_then_recovery(make_client, cognito_env, jwks_server, aiohttp_server,
                                                           signing_key, clock):
    port = jwks_server.server.port
    await jwks_server.stop()
    client = await make_client({**cognito_env, "HEALTH_READY_CACHE_SECONDS": "0"})
    check = await readiness(client)
    assert check["status"] == "fail" and "ClientConnectorError" in check["error"]
    assert await status(client, sign(signing_key, claims())) == 401

    app = web.Application()
    app.router.add_get("/pool/.well-known/jwks.json", jwks_server.handle)
    await aiohttp_server(app, port=port)
    clock.advance(11)
    assert (await readiness(client))["status"] == "ok"
    assert await status(client, sign(signing_key, claims())) == 200


@pytest.mark.parametrize("answer, attempts", [(503, 2), (404, 1), ("hang", 2), ("not json", 1), ("no keys", 1)])
async def test_fetch_failures_retry_only_when_passing(answer, attempts, make_client, cognito_env, aiohttp_server,
                                                      monkeypatch):
    monkeypatch.setattr("plugins.auth.jwks.TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    hits = []

    async def handle(request):
        hits.append(request.path)
        if answer == "hang":
            await asyncio.sleep(5)
        if answer == "not json":
            return web.Response(text="<html>")
        if answer == "no keys":
            return web.json_response({"keys": [{"kty": "RSA", "kid": "small", "use": "sig", "n": "AQAB", "e": "AQAB"}]})
        return web.json_response({}, status=answer)

    app = web.Application()
    app.router.add_get("/jwks", handle)
    server = await aiohttp_server(app)
    started = time.monotonic()
    client = await make_client({**cognito_env, "AUTH_JWKS_URL": str(server.make_url("/jwks"))})
    assert time.monotonic() - started < 5  # not waiting for the hanging answer (5 s; 10 s with the retry)
    assert len(hits) == attempts
    assert (await readiness(client))["status"] == "fail"


def test_keys_that_must_not_be_used_are_dropped(signing_key, other_key):
    good = jwk(signing_key, "good")
    document = {"keys": [
        good,
        {**jwk(other_key, "enc"), "use": "enc"},
        {**jwk(other_key, "rs512"), "alg": "RS512"},
        {**jwk(other_key, "ec"), "kty": "EC"},
        {key: value for key, value in jwk(other_key, "no-use").items() if key != "use"},
        "not an object",
    ]}
    assert list(parse_keys(document)) == ["good"]
    with pytest.raises(JwksError):
        parse_keys({"keys": [{**good, "use": "enc"}]})
