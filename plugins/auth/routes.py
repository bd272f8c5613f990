"""Local mode's keys: read (or created) when the app starts, verified against, and served publicly
at `GET /.well-known/jwks.json` like Cognito's."""
from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from plugins.auth.issuer import LocalIssuer
from plugins.auth.jwks import KeySet, parse_keys


class LocalJwks:
    def __init__(self, key_file: str) -> None:
        self.key_file = key_file
        self.keys = KeySet()
        self.document: dict = {"keys": []}

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        self.document = LocalIssuer(self.key_file).jwks()
        self.keys.keys = parse_keys(self.document)
        yield

    async def handle(self, request: web.Request) -> web.Response:
        return web.json_response(self.document)
