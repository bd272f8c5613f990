"""The authenticated caller, as handlers see it: `principal(request)`, and the one 401 answer."""
from __future__ import annotations

from aiohttp import web

from gateway.http import CALLER
from gateway.problems import Problem
from plugins.auth.api import Principal

REALM = 'Bearer realm="gateway"'


def unauthorized(description: str | None = None) -> Problem:
    """401 with an RFC 6750 challenge; `invalid_token` only when a token was sent."""
    if description is None:
        return Problem(401, "Unauthorized", "This request needs a bearer token.", headers={"WWW-Authenticate": REALM})
    return Problem(401, "Unauthorized", description, headers={
        "WWW-Authenticate": f'{REALM}, error="invalid_token", error_description="{description}"'
    })


def principal(request: web.Request) -> Principal:
    """The caller of a protected route. On a public route there is none, and the caller is asked for one."""
    try:
        return request[CALLER]  # set by the protect route wrapper
    except KeyError:
        raise unauthorized() from None
