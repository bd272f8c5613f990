"""The references every figure is compared with, served by gunicorn exactly as the gateway is.

`create_app()` is the baseline: a bare aiohttp JSON handler, no middleware. `create_floor_app()` is
the least a cache-hit read can cost here: a bare handler that makes one autobatched emcache `get`
(memcached at CACHE_URL, as the data plugin uses it) and returns the bytes. Driven with the same
bearer tokens as the cache-hit `GET /v1/me`, each token picking one of as many keys as that
scenario has users, with values of a profile's size, the distance from it to the gateway is the
gateway's own code.
"""
import os

import emcache
from aiohttp import web

from plugins.data.settings import memcached_nodes

CLIENT = web.AppKey("memcached", emcache.Client)
HOT_USERS = 100  # the cache-hit scenario cycles over this many users' tokens
KEYS = [f"bench:floor:{n}".encode() for n in range(HOT_USERS)]
BODY = (b'W/"0123456789abcdef"\n{"id":"bench-user-00000","username":"user0","display_name":"user0","bio":"",'
        b'"avatar":null,"locale":null,"created_at":"2026-11-26T20:00:00.000000Z",'
        b'"updated_at":"2026-11-26T20:00:00.000000Z","version":1}')


async def handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def cached(request: web.Request) -> web.Response:
    key = KEYS[hash(request.headers.get("Authorization")) % len(KEYS)]
    item = await request.app[CLIENT].get(key)
    return web.Response(body=item.value.partition(b"\n")[2], content_type="application/json")


async def memcached(app: web.Application):
    nodes = [emcache.MemcachedHostAddress(host, port) for host, port in memcached_nodes(os.environ["CACHE_URL"])]
    client = await emcache.create_client(nodes, timeout=1.0, autobatching=True)
    for key in KEYS:
        await client.set(key, BODY)
    app[CLIENT] = client
    yield
    await client.close()


def create_floor_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(memcached)
    app.router.add_get("/", cached)
    return app
