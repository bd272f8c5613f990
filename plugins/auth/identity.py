"""The second token kind: OpenID tokens of a Cognito identity pool (GetOpenIdToken, valid 10
minutes), for callers who signed in with any of the pool's providers, Twitter included.

They are checked as strictly as user-pool tokens (the same parsing, JWKS handling, cache and RS256
check) against their own rules: `iss` https://cognito-identity.amazonaws.com, `aud` the identity
pool id, `amr` naming `authenticated` (the pool refuses guests, and so does this), no `token_use`
(a user-pool token is never taken for one), and a subject shaped like an identity id. The caller's
id is the identity id: the one id of a person across every login linked to the identity.
"""
from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from plugins.auth.api import Principal
from plugins.auth.jwks import KeySet
from plugins.auth.jwt import TokenError
from plugins.auth.verifier import NOT_FOR_US, Verifier

IDENTITY_ISSUER = "https://cognito-identity.amazonaws.com"
IDENTITY_JWKS_URL = "https://cognito-identity.amazonaws.com/.well-known/jwks_uri"
# GetId/GetOpenIdToken's IdentityId: REGION:GUID, 1 to 55 characters (Cognito Identity API reference)
IDENTITY_ID = re.compile(r"[\w-]+:[0-9a-f-]+")
IDENTITY_ID_MAX = 55
TOKEN_KIND = "identity"  # Principal.token_use of identity-pool callers


class IdentityVerifier(Verifier):
    def __init__(self, keys: KeySet, pool_id: str, leeway: float = 0, *, issuer: str = IDENTITY_ISSUER,
                 cache_size: int = 4096) -> None:
        super().__init__(keys, issuer, (pool_id,), TOKEN_KIND, leeway, cache_size)
        self.pool_id = pool_id

    def check_claims(self, claims: dict[str, Any]) -> str:
        self.check_time(claims)
        if claims.get("iss") != self.issuer or "token_use" in claims:
            raise TokenError(NOT_FOR_US)
        aud = claims.get("aud")
        if self.pool_id not in ([aud] if isinstance(aud, str) else aud or []):
            raise TokenError(NOT_FOR_US)
        amr = claims.get("amr")
        if not (isinstance(amr, list) and "authenticated" in amr and all(isinstance(m, str) for m in amr)):
            raise TokenError("The token is not of an authenticated identity.")
        sub = claims["sub"]
        if len(sub) > IDENTITY_ID_MAX or not IDENTITY_ID.fullmatch(sub):
            raise TokenError("The token's subject is not an identity id.")
        return self.pool_id

    def principal(self, claims: dict[str, Any], client_id: str) -> Principal:
        return Principal(sub=claims["sub"], username=claims["sub"], groups=(), scopes=(), client_id=client_id,
                         token_use=TOKEN_KIND, claims=MappingProxyType(claims))
