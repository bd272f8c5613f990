"""The authenticated caller, as handlers see it: `principal(request)`."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from aiohttp import web

from gateway.http import CALLER
from gateway.problems import Problem


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


def principal(request: web.Request) -> Principal:
    """The caller of a protected route. On a public route there is none, and the caller is asked for one."""
    try:
        return request[CALLER]  # set by the protect route wrapper
    except KeyError:
        raise Problem(401, "Unauthorized", "This request needs a bearer token.",
                      headers={"WWW-Authenticate": 'Bearer realm="gateway"'}) from None
