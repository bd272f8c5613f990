"""`GET /bench/open` (public) and `GET /bench/protected` (bearer): the same no-op, with and without auth."""
from aiohttp import web

from gateway.plugin import Plugin
from plugins.auth.api import PRINCIPAL

BODY = b'{"ok":true}'


async def noop(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def setup(ctx) -> None:
    ctx.route("GET", "/bench/open", noop, "No-op, public", public=True)
    ctx.route("GET", "/bench/protected", noop, "No-op, bearer token required")


plugin = Plugin(name="bench", setup=setup, requires=(PRINCIPAL,))
