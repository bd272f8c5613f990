"""The declarative resource layer: a marshmallow schema, a table, a key and an owner rule give
cached reads with ETag/304, PATCH with If-Match/412 on a version column, DELETE, and cursor pages.

    notes = resources.define("note", table="notes", schema=NoteSchema, owner="owner_id")

    async def get_note(request):
        return await notes.get(request, request.match_info["id"], owner=principal(request).sub)

    async def patch_note(request):   # route declared with body=NotePatchSchema
        return await notes.patch(request, request.match_info["id"], owner=principal(request).sub)

    async def list_notes(request):   # route declared with query=ListQuery
        return await notes.list(request, owner=principal(request).sub)

The table has the key column, `version` (integer, starts at 1), `created_at` and `updated_at`
(fixed-width UTC text, see `migrator.now`), and the owner column when there is an owner rule.
With `owner=` given, a row of someone else's is answered 404, as if it did not exist.

Representations are rendered once, on a cache miss, into bytes stored as `ETag\\nbody`; a hit
sends those bytes. Writes commit, then invalidate every view of the row. Other plugins extend a
resource with `on_validate` (check a PATCH field), `on_render` (compute an output field) and
`on_delete` (work in the deleting transaction).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from typing import Any, Awaitable, Callable

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate

from gateway.problems import Problem, ValidationProblem
from gateway.routing import BODY, QUERY
from plugins.data.cache import Cache, cache_key
from plugins.data.migrator import now

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT = "default"

Validator = Callable[[web.Request, Any], Awaitable[None]]  # raises marshmallow.ValidationError
Renderer = Callable[[dict], Awaitable[Any]]  # row -> the output field's value
DeleteHook = Callable[[Any, str], Awaitable[Callable[[], Awaitable[None]] | None]]


class Cursor(fields.Str):
    """An opaque page position: base64url of the last row's (created_at, key)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            position = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, binascii.Error):
            raise ValidationError("Not a cursor this API returned.") from None
        if not (isinstance(position, list) and len(position) == 2 and all(isinstance(p, str) for p in position)):
            raise ValidationError("Not a cursor this API returned.")
        return position


def encode_cursor(created_at: str, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, key]).encode()).rstrip(b"=").decode()


class ListQuery(Schema):
    limit = fields.Int(load_default=20, validate=validate.Range(1, 100))
    cursor = Cursor(load_default=None)


def identifiers(names) -> list[str]:
    """Table and column names come from code, never from requests; this keeps it that way."""
    names = list(names)
    for name in names:
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain SQL identifier")
    return names


def etag_of(row: dict) -> str:
    # The version alone would repeat after a delete and re-create; created_at tells those apart.
    return f'"{row["version"]}.{zlib.crc32(row["created_at"].encode()):08x}"'


def etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-Match (strong comparison) or If-None-Match (weak) header names this ETag."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate == etag or (weak and candidate.removeprefix("W/") == etag):
            return True
    return False


def respond(request: web.Request, stored: bytes, status: int = 200) -> web.Response:
    etag, _, body = stored.partition(b"\n")
    headers = {"ETag": etag.decode(), "Cache-Control": "private, no-cache"}
    if_none_match = request.headers.get("If-None-Match") if request.method == "GET" else None
    if if_none_match is not None and etag_listed(if_none_match, headers["ETag"], weak=True):
        return web.Response(status=304, headers=headers)
    # Content-Type as a header, not `content_type=`: aiohttp then skips parsing it (the hot path).
    headers["Content-Type"] = "application/json"
    return web.Response(status=status, body=body, headers=headers)


def not_found(name: str) -> Problem:
    return Problem(404, "Not Found", f"There is no such {name}.")


class Resource:
    def __init__(self, name: str, database, cache: Cache, *, table: str, schema: type[Schema], key: str = "id",
                 owner: str | None = None, views: dict[str, type[Schema]] | None = None,
                 read_max_lag: float = 0) -> None:
        identifiers([table, key, owner or "owner"])
        self.name = name
        self.database = database
        self.cache = cache
        self.table = table
        self.key = key
        self.owner = owner
        self.read_max_lag = read_max_lag
        self.views = {DEFAULT: schema(), **{view: cls() for view, cls in (views or {}).items()}}
        self.reads = 0  # rows read from the database for representations: what the cache saves
        self._validators: dict[str, Validator] = {}
        self._renderers: dict[str, Renderer] = {}
        self._delete_hooks: list[DeleteHook] = []

    # Extension points for other plugins.

    def on_validate(self, field: str, validator: Validator) -> None:
        """`await validator(request, value)` for a PATCH that sets `field`; raise ValidationError to refuse."""
        self._validators[field] = validator

    def on_render(self, field: str, renderer: Renderer) -> None:
        """`await renderer(row)` becomes output `field` in every view that has it (last registration wins)."""
        self._renderers[field] = renderer

    def on_delete(self, hook: DeleteHook) -> None:
        """`await hook(tx, key)` runs in the deleting transaction; it may return an async callable run
        after the commit (invalidating its own cache keys, deleting stored objects)."""
        self._delete_hooks.append(hook)

    # Storage.

    def _where(self, key: str, owner: str | None) -> tuple[str, tuple]:
        if owner is None or self.owner is None:
            return f"{self.key} = ?", (key,)
        return f"{self.key} = ? AND {self.owner} = ?", (key, owner)

    def cache_keys(self, key: str, owner: str | None = None) -> list[bytes]:
        keys = [cache_key(self.name, view, key) for view in self.views]
        if owner is not None:
            keys += [cache_key(self.name, view, key, owner) for view in self.views]
        return keys

    async def row(self, key: str, owner: str | None = None) -> dict | None:
        """The current row from the writer (representations are never filled from a lagging replica)."""
        self.reads += 1
        where, params = self._where(key, owner)
        return await self.database.fetch_one(f"SELECT * FROM {self.table} WHERE {where}", params)

    async def data(self, row: dict, view: str = DEFAULT) -> dict:
        """The representation of a row as a dict (for answers that embed it)."""
        data = self.views[view].dump(row)
        for field, renderer in self._renderers.items():
            if field in self.views[view].fields:
                data[field] = await renderer(row)
        return data

    async def render(self, row: dict, view: str = DEFAULT) -> bytes:
        body = json.dumps(await self.data(row, view), ensure_ascii=False, separators=(",", ":")).encode()
        return etag_of(row).encode() + b"\n" + body

    def read(self, key: str, owner: str | None = None, view: str = DEFAULT) -> Awaitable[bytes | None]:
        """The stored representation (`ETag\\nbody`), from the cache or rendered from the database.
        Not a coroutine itself: it hands back the cache's, one frame fewer on every read."""
        ck = cache_key(self.name, view, key) if owner is None else cache_key(self.name, view, key, owner)
        return self.cache.fetch(ck, self._load, key, owner, view)

    async def _load(self, key: str, owner: str | None, view: str) -> bytes | None:
        row = await self.row(key, owner)
        return None if row is None else await self.render(row, view)

    async def insert(self, values: dict, *, if_absent: bool = False, tx=None) -> dict:
        """Insert a row (created_at, updated_at and version filled in); with `if_absent` an existing
        row with that key is kept as it is. Returns the values inserted. Inside a caller's `tx`, the
        caller calls `written()` once that has committed."""
        stamp = now()
        row = {"created_at": stamp, "updated_at": stamp, "version": 1, **values}
        columns = identifiers(row)
        sql = f"INSERT INTO {self.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if if_absent:
            sql += (f" ON DUPLICATE KEY UPDATE {self.key} = {self.key}" if self.database.dialect == "mysql"
                    else " ON CONFLICT DO NOTHING")
        if tx is not None:
            await tx.execute(sql, tuple(row.values()))
            return row
        async with self.database.transaction() as tx:
            await tx.execute(sql, tuple(row.values()))
        await self.written(row[self.key], row.get(self.owner) if self.owner else None)
        return row

    async def clear_if(self, tx, key: str, field: str, value: Any) -> bool:
        """Inside the caller's transaction: set `field` to NULL on row `key` if it holds `value`, as a
        new version (so ETags change). The caller calls `written(key)` once that has committed."""
        identifiers([field])
        cleared = await tx.execute(
            f"UPDATE {self.table} SET {field} = NULL, version = version + 1, updated_at = ? "
            f"WHERE {self.key} = ? AND {field} = ?", (now(), key, value))
        return bool(cleared)

    async def written(self, key: str, owner: str | None = None) -> None:
        """After a write to this row commits (by this layer or by hand): drop every cached view of it
        and remember, for the writer's own list reads, that the replica may be behind."""
        await self.cache.invalidate(*self.cache_keys(key, owner))
        if self.database.replica and self.read_max_lag:
            await self.cache.mark(cache_key(self.name, "wrote", owner or key), round(self.read_max_lag))

    # Handlers: each returns the response for a route of the resource.

    async def get(self, request: web.Request, key: str, *, owner: str | None = None, view: str = DEFAULT,
                  create: Callable[[], dict] | None = None) -> web.Response:
        """200 with the representation and its ETag, 304 for a matching If-None-Match, else 404;
        `create()` gives the values of a row to insert when there is none."""
        stored = await self.read(key, owner, view)
        if stored is None and create is not None:
            await self.insert(create(), if_absent=True)
            stored = await self.read(key, owner, view)
            if stored is None:  # the cached "absent" outlived a failed invalidation: ask the database
                row = await self.row(key, owner)
                stored = None if row is None else await self.render(row, view)
        if stored is None:
            raise not_found(self.name)
        return respond(request, stored)

    async def patch(self, request: web.Request, key: str, *, owner: str | None = None,
                    create: Callable[[], dict] | None = None) -> web.Response:
        """Apply the route's validated body; If-Match is compared with the current ETag (412)."""
        changes = request[BODY]
        errors = {}
        for field, value in changes.items():
            if field in self._validators:
                try:
                    await self._validators[field](request, value)
                except ValidationError as exc:
                    errors[field] = exc.messages
        if errors:
            raise ValidationProblem(errors)
        if_match = request.headers.get("If-Match")
        where, params = self._where(key, owner)
        select = f"SELECT * FROM {self.table} WHERE {where}{self.database.for_update}"
        async with self.database.transaction() as tx:
            row = await tx.fetch_one(select, params)
            created = row is None and create is not None
            if created:
                await self.insert(create(), if_absent=True, tx=tx)
                row = await tx.fetch_one(select, params)
            if row is None:
                raise not_found(self.name)
            if if_match is not None and not etag_listed(if_match, etag_of(row), weak=False):
                raise Problem(412, "Precondition Failed", f"The {self.name} has changed; fetch it again.")
            changed = {column: value for column, value in changes.items() if row[column] != value}
            if changed:
                stamp = now()
                assignments = "".join(f"{column} = ?, " for column in identifiers(changed))
                await tx.execute(
                    f"UPDATE {self.table} SET {assignments}version = version + 1, updated_at = ? WHERE {where}",
                    (*changed.values(), stamp, *params),
                )
                row = {**row, **changed, "version": row["version"] + 1, "updated_at": stamp}
        if changed or created:
            await self.written(key, owner)
        return respond(request, await self.render(row))

    async def delete(self, request: web.Request, key: str, *, owner: str | None = None) -> web.Response:
        """204 whether or not the row existed (DELETE is idempotent)."""
        where, params = self._where(key, owner)
        after_commit = []
        async with self.database.transaction() as tx:
            if await tx.execute(f"DELETE FROM {self.table} WHERE {where}", params):
                for hook in self._delete_hooks:
                    after_commit.append(await hook(tx, key))
        await self.written(key, owner)
        for callback in after_commit:
            if callback is not None:
                await callback()
        return web.Response(status=204)

    async def list(self, request: web.Request, owner: str) -> web.Response:
        """The owner's rows, newest first: `{"items": [...], "next_cursor": str | null}`; the route
        declares `query=ListQuery`."""
        if self.owner is None:
            raise RuntimeError(f"{self.name} has no owner column to list by")
        query = request[QUERY]
        sql = f"SELECT * FROM {self.table} WHERE {self.owner} = ?"
        params: tuple = (owner,)
        if query["cursor"] is not None:
            created_at, key = query["cursor"]
            sql += f" AND (created_at < ? OR (created_at = ? AND {self.key} < ?))"
            params += (created_at, created_at, key)
        sql += f" ORDER BY created_at DESC, {self.key} DESC LIMIT ?"
        stale_ok = self.database.replica and not await self.cache.marked(cache_key(self.name, "wrote", owner))
        rows = await self.database.fetch_all(sql, params + (query["limit"] + 1,), stale_ok=stale_ok)
        page = rows[:query["limit"]]
        more = len(rows) > query["limit"]
        return web.json_response({
            "items": [await self.data(row) for row in page],
            "next_cursor": encode_cursor(page[-1]["created_at"], page[-1][self.key]) if more else None,
        })


class Resources:
    """The "resources" service: defines resources and finds those other plugins defined."""

    def __init__(self, database, cache: Cache, read_max_lag: float) -> None:
        self.database = database
        self.cache = cache
        self.read_max_lag = read_max_lag
        self._defined: dict[str, Resource] = {}

    def define(self, name: str, **options: Any) -> Resource:
        if name in self._defined:
            raise ValueError(f"resource {name!r} is already defined")
        resource = Resource(name, self.database, self.cache, read_max_lag=self.read_max_lag, **options)
        self._defined[name] = resource
        return resource

    def __getitem__(self, name: str) -> Resource:
        return self._defined[name]
