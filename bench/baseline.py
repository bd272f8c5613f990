"""The references every figure is compared with, served by gunicorn exactly as the gateway is.

`create_app()` is the baseline: a bare aiohttp JSON handler, no middleware. `create_floor_app()` is
the least a cache-hit read can cost here: a bare handler that makes one autobatched emcache `get`
(memcached at CACHE_URL, as the data plugin uses it) and returns the bytes. Driven with the same
bearer tokens as the cache-hit `GET /v1/me`, each token picking one of as many keys as that
scenario has users, with values of a profile's size, the distance from it to the gateway is the
gateway's own code.

The references for the paths that reach the database, each a hand-written aiohttp handler doing what
the gateway's route must do, on an aiomysql pool of the gateway's default size (aiomysql's own,
unordered queue) and the same memcached:
`create_write_app()` PATCHes the caller's profile (BEGIN, SELECT ... FOR UPDATE, UPDATE with
version + 1, COMMIT, one memcached delete, the row as JSON); `create_media_app()` creates a media
record within the caller's quotas (the local store's HMAC-signed upload form, then BEGIN, the
gateway's own admitting UPDATE of the caller's quota row, the INSERT, COMMIT: the least a creation
that keeps quotas can do); `create_miss_app()`
reads a profile cache-aside (a memcached get; on a miss one SELECT and one memcached set), under keys
of its own so that it never warms the gateway's. Tokens are not verified: each token's subject is
read from its payload once and remembered, which is what the gateway's verified-token cache costs
once it has seen a token (every bench token is seen in the warm-up first).
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import aiomysql
import emcache
from aiohttp import web

from gateway.settings import load
from plugins.data.api import utc_text
from plugins.data.cache import cache_key
from plugins.data.settings import DataSettings, memcached_nodes, mysql_params
from plugins.media.quotas import ADMIT, HOUR
from plugins.media.settings import MediaSettings

CLIENT = web.AppKey("memcached", emcache.Client)
POOL = web.AppKey("mysql", aiomysql.Pool)
# The gateway's sizes: its defaults, or what the bench's environment sets for both (DATABASE_POOL_MAX=64
# measures the cold mix with a connection for every concurrent miss).
POOL_SIZE = int(os.environ.get("DATABASE_POOL_MAX", DataSettings().fields["pool_max"].load_default))
MEMCACHED_CONNECTIONS = int(os.environ.get("CACHE_MAX_CONNECTIONS",
                                           DataSettings().fields["cache_max_connections"].load_default))
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
    app[CLIENT] = client = await emcache.create_client(nodes, timeout=1.0, autobatching=True,
                                                       max_connections=MEMCACHED_CONNECTIONS)
    yield
    await client.close()


async def floor_values(app: web.Application):
    for key in KEYS:
        await app[CLIENT].set(key, BODY)
    yield


def create_floor_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.extend([memcached, floor_values])
    app.router.add_get("/", cached)
    return app


SUBJECTS: dict[str, str] = {}


def subject(request: web.Request) -> str:
    token = request.headers["Authorization"][7:]
    sub = SUBJECTS.get(token)
    if sub is None:
        payload = token.split(".")[1]
        sub = SUBJECTS[token] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    return sub


async def mysql(app: web.Application):
    pool = await aiomysql.create_pool(minsize=0, maxsize=POOL_SIZE, autocommit=True, charset="utf8mb4",
                                      **mysql_params(os.environ["DATABASE_URL"]))
    app[POOL] = pool
    yield
    pool.close()
    await pool.wait_closed()


async def write(request: web.Request) -> web.Response:
    sub, changes = subject(request), await request.json()
    (column, value), = changes.items()  # the bench changes one field: display_name
    async with request.app[POOL].acquire() as connection:
        async with connection.cursor(aiomysql.DictCursor) as cursor:
            await connection.begin()
            await cursor.execute("SELECT * FROM profiles WHERE id = %s FOR UPDATE", (sub,))
            row = await cursor.fetchone()
            stamp = utc_text()
            await cursor.execute(f"UPDATE profiles SET {column} = %s, version = version + 1, updated_at = %s "
                                 "WHERE id = %s", (value, stamp, sub))
            await connection.commit()
    try:
        await request.app[CLIENT].delete(cache_key("profile", "default", sub))
    except emcache.NotFoundCommandError:
        pass
    row.update({column: value, "version": row["version"] + 1, "updated_at": stamp})
    return web.json_response(row)


SECRET = secrets.token_bytes(32)


QUOTAS = load(MediaSettings)  # the gateway's quotas: its defaults, or the bench's environment
QUOTA_ROWS: set[str] = set()  # callers whose quota row exists


async def create_media(request: web.Request) -> web.Response:
    sub, body = subject(request), await request.json()
    media_id = secrets.token_urlsafe(16)
    key = f"u/{sub}/{media_id}.jpg"
    expires = int(time.time()) + 900
    form = {"key": key, "Content-Type": body["content_type"]}
    policy = base64.b64encode(json.dumps({"expiration": expires, "fields": form,
                                          "content-length-range": [1, body["size"]]}).encode()).decode()
    form.update(policy=policy, signature=hmac.new(SECRET, policy.encode(), hashlib.sha256).hexdigest())
    stamp = utc_text()
    row = {"id": media_id, "owner": sub, "purpose": body["purpose"], "status": "pending",
           "content_type": body["content_type"], "size": body["size"], "object_key": key,
           "created_at": stamp, "updated_at": stamp, "version": 1}
    now = int(time.time())
    async with request.app[POOL].acquire() as connection:
        async with connection.cursor() as cursor:
            if sub not in QUOTA_ROWS:
                await cursor.execute("INSERT INTO media_quotas (owner, window_start, window_count, created_at, "
                                     "updated_at) VALUES (%s, %s, 0, %s, %s) ON DUPLICATE KEY UPDATE owner = owner",
                                     (sub, now, stamp, stamp))
                QUOTA_ROWS.add(sub)
            await connection.begin()
            await cursor.execute(ADMIT.replace("?", "%s"), (now - HOUR, now - HOUR, now, body["size"], stamp, sub,
                                                            now - HOUR, QUOTAS.quota_uploads_per_hour,
                                                            QUOTAS.quota_pending, body["size"], QUOTAS.quota_bytes))
            if cursor.rowcount != 1:
                await connection.rollback()
                return web.json_response({"title": "Too Many Requests"}, status=429)
            await cursor.execute(f"INSERT INTO media ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                                 tuple(row.values()))
            await connection.commit()
    return web.json_response({"media": row, "upload": {"method": "POST", "url": "http://127.0.0.1/local-media",
                                                       "fields": form, "expires_at": utc_text(expires)}},
                             status=201)


async def read(request: web.Request) -> web.Response:
    sub = subject(request)
    key = b"bench:miss:" + sub.encode()
    item = await request.app[CLIENT].get(key)
    if item is not None:
        return web.Response(body=item.value.partition(b"\n")[2], content_type="application/json")
    async with request.app[POOL].acquire() as connection:
        async with connection.cursor(aiomysql.DictCursor) as cursor:
            await cursor.execute("SELECT * FROM profiles WHERE id = %s", (sub,))
            row = await cursor.fetchone()
    body = json.dumps(row).encode()
    await request.app[CLIENT].set(key, f'"{row["version"]}"'.encode() + b"\n" + body, exptime=300)
    return web.Response(body=body, content_type="application/json")


def reference(method: str, handler) -> web.Application:
    app = web.Application()
    app.cleanup_ctx.extend([mysql, memcached])
    app.router.add_route(method, "/", handler)
    return app


def create_write_app() -> web.Application:
    return reference("PATCH", write)


def create_media_app() -> web.Application:
    return reference("POST", create_media)


def create_miss_app() -> web.Application:
    return reference("GET", read)
