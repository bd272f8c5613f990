"""The auth plugin's public API, the only module of it other plugins import: the "principal"
service (`principal(request)` gives the authenticated caller of a protected route) and its type."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from aiohttp import web

from gateway.plugin import ServiceKey


@dataclass(frozen=True)
class Principal:
    sub: str
    username: str
    groups: tuple[str, ...]
    scopes: tuple[str, ...]
    client_id: str
    token_use: str
    claims: Mapping[str, Any]  # read-only: one Principal is shared by every request with the same token

    @classmethod
    def from_claims(cls, claims: dict[str, Any], client_id: str) -> "Principal":
        return cls(
            sub=claims["sub"],
            # access tokens carry `username`, id tokens `cognito:username`
            username=claims.get("username") or claims.get("cognito:username") or claims["sub"],
            groups=tuple(claims.get("cognito:groups", ())),
            scopes=tuple(claims.get("scope", "").split()),
            client_id=client_id,
            token_use=claims["token_use"],
            claims=MappingProxyType(claims),
        )


PrincipalOf = Callable[[web.Request], Principal]
PRINCIPAL: ServiceKey[PrincipalOf] = ServiceKey("principal", PrincipalOf)
