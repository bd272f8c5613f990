"""The verifier without HTTP: its cache of verified tokens and the clock leeway."""
from __future__ import annotations

import time

import pytest

import plugins.auth.verifier
from plugins.auth.jwks import KeySet, parse_keys
from plugins.auth.jwt import TokenError
from plugins.auth.verifier import Verifier
from tests.auth.helpers import CLIENT, ISSUER, claims, jwk, sign


@pytest.fixture
def now(monkeypatch):
    """The verifier's wall clock, settable."""
    clock = {"now": time.time()}
    monkeypatch.setattr(plugins.auth.verifier, "time", lambda: clock["now"])
    return clock


def verifier(key, **options) -> Verifier:
    return Verifier(KeySet(parse_keys({"keys": [jwk(key, "k1")]})), ISSUER, (CLIENT,), "access", **options)


async def test_cached_tokens_are_never_served_past_exp(signing_key, now):
    check = verifier(signing_key)
    token = sign(signing_key, claims(exp=int(now["now"]) + 5))
    assert (await check.verify(token)).sub
    now["now"] += 10
    with pytest.raises(TokenError, match="expired"):
        await check.verify(token)


async def test_leeway_applies_to_exp_and_nbf(signing_key, now):
    check = verifier(signing_key, leeway=30)
    late = sign(signing_key, claims(exp=int(now["now"]) - 20))
    early = sign(signing_key, claims(nbf=int(now["now"]) + 20))
    assert (await check.verify(late)).sub and (await check.verify(early)).sub
    with pytest.raises(TokenError, match="expired"):
        await verifier(signing_key, leeway=10).verify(late)
    with pytest.raises(TokenError, match="not valid yet"):
        await verifier(signing_key, leeway=10).verify(early)


async def test_the_cache_is_bounded_and_keeps_recent_tokens(signing_key, rsa_calls):
    check = verifier(signing_key, cache_size=3)
    tokens = [sign(signing_key, claims(jti=str(n))) for n in range(4)]
    for token in tokens[:3]:
        await check.verify(token)
    await check.verify(tokens[0])  # now the most recently used
    await check.verify(tokens[3])
    assert len(check._cache) == 3
    rsa_calls.clear()
    await check.verify(tokens[0])
    assert rsa_calls == []
    await check.verify(tokens[1])  # evicted: verified again
    assert len(rsa_calls) == 1


async def test_a_shared_principal_is_read_only(signing_key):
    principal = await verifier(signing_key).verify(sign(signing_key, claims(**{"cognito:groups": ["a"]})))
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone-else"
    with pytest.raises(AttributeError):
        principal.sub = "someone-else"
    assert principal.groups == ("a",)
