"""Token verification, in order of cost: a cached result, then strict parsing (plugins.auth.jwt),
then the claims, then the key lookup, and only then the RSA signature (pyjwt).

Verified tokens are remembered per worker in a bounded LRU keyed by the token itself and never kept
past the token's `exp`: a token seen before costs a dict lookup and a clock comparison. (Hashing
the token first would save memory, at the cost of a SHA-256 on every request.)
"""
from __future__ import annotations

from collections import OrderedDict
from time import time
from typing import Any

from jwt.algorithms import RSAAlgorithm

from gateway.identifiers import exact
from plugins.auth.jwks import KeySet
from plugins.auth.jwt import Jwt, TokenError, parse
from plugins.auth.api import Principal

RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)
NOT_FOR_US = "The token was not issued for this service."


class Verifier:
    def __init__(self, keys: KeySet, issuer: str, client_ids: tuple[str, ...], token_use: str,
                 leeway: float = 0, cache_size: int = 4096) -> None:
        self.keys = keys
        self.issuer = issuer
        self.client_ids = frozenset(client_ids)
        self.token_uses = ("access", "id") if token_use == "any" else (token_use,)
        self.leeway = leeway
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._issuers: dict[str, Verifier] = {issuer: self}

    def also(self, other: "Verifier") -> None:
        """Accept `other`'s tokens too (another issuer, with its own keys and claim rules): each token
        goes to the verifier of its `iss` before any key lookup or crypto, and shares this cache."""
        self._issuers[other.issuer] = other

    def known(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired; no coroutine on this path."""
        cached = self._cache.get(token)
        if cached is not None:
            if time() < cached[0]:
                self._cache.move_to_end(token)
                return cached[1]
            del self._cache[token]
        return None

    async def verify(self, token: str) -> Principal:
        """The token's principal; raises TokenError saying, in general terms, why it is refused."""
        principal = self.known(token)
        if principal is not None:
            return principal
        principal = await self._verify(token)
        self._cache[token] = (principal.claims["exp"], principal)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        jwt = parse(token)
        if not exact(jwt.payload["sub"]):  # trailing spaces, too long, not Unicode: it would not compare exactly
            raise TokenError("The token's subject is not one this service accepts.")
        verifier = self._issuers.get(jwt.payload.get("iss"))
        if verifier is None:
            raise TokenError(NOT_FOR_US)
        return await verifier._check(jwt)

    async def _check(self, jwt: Jwt) -> Principal:
        client_id = self.check_claims(jwt.payload)
        kid = jwt.header["kid"]
        key = self.keys.get(kid) or await self.keys.fetch_for(kid)
        if key is None:
            raise TokenError("The token's signing key is unknown.")
        if not RS256.verify(jwt.signing_input, key, jwt.signature):
            raise TokenError("The token's signature is invalid.")
        return self.principal(jwt.payload, client_id)

    def principal(self, claims: dict[str, Any], client_id: str) -> Principal:
        return Principal.from_claims(claims, client_id)

    def check_time(self, claims: dict[str, Any]) -> None:
        now = time()
        if now >= claims["exp"] + self.leeway:
            raise TokenError("The token has expired.")
        if "nbf" in claims and now + self.leeway < claims["nbf"]:
            raise TokenError("The token is not valid yet.")

    def check_claims(self, claims: dict[str, Any]) -> str:
        """Time, issuer, token use and audience; returns the client id the token was issued to."""
        self.check_time(claims)
        if claims.get("iss") != self.issuer:
            raise TokenError(NOT_FOR_US)
        token_use = claims.get("token_use")
        if token_use not in self.token_uses:
            raise TokenError("The token's kind (token_use) is not accepted here.")
        if token_use == "access":
            audience = [claims.get("client_id")]
        else:
            aud = claims.get("aud")
            audience = [aud] if isinstance(aud, str) else aud or []
        for client_id in audience:
            if client_id in self.client_ids:
                return client_id
        raise TokenError(NOT_FOR_US)
