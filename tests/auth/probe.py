"""A test-only plugin with routes of every kind of protection; handlers echo the principal."""
from aiohttp import web

from gateway.plugin import Plugin
from plugins.auth.api import PRINCIPAL


def setup(ctx):
    principal = ctx.require(PRINCIPAL)

    async def me(request):
        caller = principal(request)
        return web.json_response({
            "sub": caller.sub, "username": caller.username, "groups": list(caller.groups),
            "scopes": list(caller.scopes), "client_id": caller.client_id, "token_use": caller.token_use,
        })

    async def open_(request):
        return web.json_response({"open": True})

    ctx.route("GET", "/probe/me", me, "Protected: echoes the principal")
    ctx.route("GET", "/probe/open", open_, "Public", public=True)
    ctx.route("GET", "/probe/admins", me, "Needs the admins or ops group", groups=("admins", "ops"))
    ctx.route("GET", "/probe/scoped", me, "Needs two scopes", scopes=("probe/read", "probe/write"))


plugin = Plugin(name="probe", requires=(PRINCIPAL,), setup=setup)
