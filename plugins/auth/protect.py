"""Enforces each route's declaration, as a route wrapper applied at start-up: public routes are
served untouched, others need a valid bearer token and the route's groups (any of) and scopes (all
of). Requests matching no declared route (404, 405, /openapi.json) never meet it, so unknown paths
answer 404 rather than 401.

Failures follow RFC 6750: 401 with a `WWW-Authenticate: Bearer` challenge (an `invalid_token`
error only when a token was sent), 403 for missing groups or scopes. No answer echoes the token.
"""
from __future__ import annotations

from typing import Awaitable

from aiohttp import web

from gateway.http import CALLER
from gateway.problems import Problem
from gateway.plugin import RouteSpec
from plugins.auth.jwt import TokenError
from plugins.auth.principal import REALM, unauthorized
from plugins.auth.verifier import Verifier

ORDER = 100


def protect(verifier: Verifier):
    """The route wrapper: public routes are served as they are; the others check first."""

    def wrap(spec: RouteSpec, handler):
        if spec.public:
            return handler

        def admit(request: web.Request, principal) -> None:
            if spec.groups and not any(group in principal.groups for group in spec.groups):
                raise Problem(403, "Forbidden", "This needs membership of a group the caller is not in.")
            if spec.scopes and not all(scope in principal.scopes for scope in spec.scopes):
                raise Problem(403, "Forbidden", "The token lacks a scope this needs.", headers={
                    "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{" ".join(spec.scopes)}"'
                })
            request[CALLER] = principal

        async def verified(request: web.Request, token: str) -> web.StreamResponse:
            try:
                principal = await verifier.verify(token)
            except TokenError as exc:
                raise unauthorized(exc.description) from None
            admit(request, principal)
            return await handler(request)

        # Not a coroutine: a request with a token already verified costs one call, not a frame more
        # (each frame between a handler and the socket is resumed on every wait).
        def protected(request: web.Request) -> Awaitable[web.StreamResponse]:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":  # no credentials of ours at all
                raise unauthorized()
            token = token.strip()
            principal = verifier.known(token)
            if principal is None:
                return verified(request, token)
            admit(request, principal)
            return handler(request)

        return protected

    return wrap
