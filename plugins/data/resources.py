"""The resource layer's HTTP adapters: a marshmallow schema, a table, a key and an owner rule give
create, cached reads with ETag/304, PATCH with If-Match/412 on the version column, DELETE and
cursor pages, in a few declared lines:

    notes = resources.define("note", table="notes", schema=NoteSchema, owner="owner_id")

    async def patch_note(request, body):   # route declared with body=NotePatchSchema
        return await notes.patch(request, request.match_info["id"], body, owner=principal(request).sub)

    async def list_notes(request, query):  # route declared with query=ListQuery
        return await notes.list(request, query, owner=principal(request).sub)

A `Resource` joins the table's `Repository` (all SQL) and its `Representations` (the cache of
rendered bytes); with `owner=` given, a row of someone else's is answered 404, as if it did not
exist, and so is a key that would not compare exactly (gateway/identifiers.py): one row has one
key, in SQL and in the cache. Other plugins extend a resource with `on_validate` (check a PATCH
field) and `on_render` (compute an output field); deleting everything of an account is the
ACCOUNTS service's work (accounts.py).
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from marshmallow import Schema, ValidationError

from gateway.identifiers import exact
from gateway.problems import Problem, ValidationProblem
from plugins.data.api import Database, Executor, Renderer, Row, Validator, not_found
from plugins.data.cache import Cache
from plugins.data.repository import Repository
from plugins.data.representations import DEFAULT, Representations, etag_of

CONTENDED_SECONDS = 1.0
CONTENDED_ROWS = 1024  # past this many, the expired ones are forgotten


def etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-Match (strong comparison) or If-None-Match (weak) header names this ETag."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate == etag or (weak and candidate.removeprefix("W/") == etag):
            return True
    return False


def names_versions(if_match: str | None) -> bool:
    """Whether an If-Match header asks for particular versions (not absent, not `*`)."""
    return if_match is not None and not any(candidate.strip() == "*" for candidate in if_match.split(","))


def respond(request: web.Request, stored: bytes, status: int = 200) -> web.Response:
    etag, _, body = stored.partition(b"\n")
    headers = {"ETag": etag.decode(), "Cache-Control": "private, no-cache"}
    if_none_match = request.headers.get("If-None-Match") if request.method in ("GET", "HEAD") else None
    if if_none_match is not None and etag_listed(if_none_match, headers["ETag"], weak=True):
        return web.Response(status=304, headers=headers)
    # Content-Type as a header, not `content_type=`: aiohttp then skips parsing it (the hot path).
    headers["Content-Type"] = "application/json"
    return web.Response(status=status, body=body, headers=headers)


class Resource:
    def __init__(self, name: str, database: Database, cache: Cache, *, table: str, schema: type[Schema],
                 key: str = "id", owner: str | None = None, views: dict[str, type[Schema]] | None = None,
                 read_max_lag: float = 0) -> None:
        self.name = name
        self.repository = Repository(database, table, key, owner)
        self.representations = Representations(
            name, cache, {DEFAULT: schema(), **{view: cls() for view, cls in (views or {}).items()}},
            replica=database.replica, read_max_lag=read_max_lag)
        self.database = database
        self.reads = 0  # rows read from the database for representations: what the cache saves
        self._validators: dict[str, Validator] = {}
        self._contended: dict[str, float] = {}  # rows whose PATCHes lock first, until when

    # Extension points for other plugins.

    def on_validate(self, field: str, validator: Validator) -> None:
        """`await validator(request, value)` for a PATCH that sets `field`; raise ValidationError to refuse."""
        self._validators[field] = validator

    def on_render(self, field: str, renderer: Renderer) -> None:
        """`await renderer(row)` becomes output `field` in every view that has it (last registration wins)."""
        self.representations.render_with(field, renderer)

    # Rows and representations.

    async def row(self, key: str, owner: str | None = None) -> Row | None:
        """The current row from the writer (representations are never filled from a lagging replica)."""
        if not exact(key):
            return None
        self.reads += 1
        return await self.repository.find(key, owner)

    def data(self, row: Row, view: str = DEFAULT) -> Awaitable[dict]:
        return self.representations.data(row, view)

    async def written(self, key: str, owner: str | None = None) -> None:
        """After a write to this row commits (here or through the repository): drop its cached views."""
        await self.representations.written(key, owner)

    async def _load(self, key: str, owner: str | None, view: str) -> bytes | None:
        row = await self.row(key, owner)
        return None if row is None else await self.representations.render(row, view)

    # Handlers: each returns the response for a route of the resource.

    async def get(self, request: web.Request, key: str, *, owner: str | None = None, view: str = DEFAULT,
                  create: Callable[[], dict] | None = None) -> web.Response:
        """200 with the representation and its ETag, 304 for a matching If-None-Match, else 404;
        `create()` gives the values of a row to insert when there is none."""
        if not exact(key):
            raise not_found(self.name)
        stored = await self.representations.read(key, owner, view, self._load)
        if stored is None and create is not None:
            values = create()
            await self.repository.insert(values, if_absent=True)
            await self.written(key, owner)
            stored = await self.representations.read(key, owner, view, self._load)
            if stored is None:  # the cached "absent" outlived a failed invalidation: ask the database
                stored = await self._load(key, owner, view)
        if stored is None:
            raise not_found(self.name)
        return respond(request, stored)

    async def create(self, request: web.Request, values: dict, *, location: str | None = None) -> web.Response:
        """201 with the new row's representation and ETag (and `Location`, when given)."""
        row = await self.repository.insert(values)
        await self.written(row[self.repository.key], row.get(self.repository.owner) if self.repository.owner else None)
        response = respond(request, await self.representations.render(row), status=201)
        if location is not None:
            response.headers["Location"] = location
        return response

    async def patch(self, request: web.Request, key: str, changes: dict, *, owner: str | None = None,
                    create: Callable[[], dict] | None = None) -> web.Response:
        """Apply the validated `changes`; If-Match is compared with the current ETag (412)."""
        if not exact(key):
            raise not_found(self.name)
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
        row, changed = await self._change(key, owner, changes, if_match)
        created = row is None and create is not None
        if created:
            # A first write inserts the row on its own, then changes it: inserting in the transaction
            # that read it missing would wait on the gap locks of parallel first writes, which
            # deadlock (MySQL 1213) with its own.
            await self.repository.insert(create(), if_absent=True)
            row, changed = await self._change(key, owner, changes, if_match)
        if row is None:
            raise not_found(self.name)
        if changed or created:
            await self.written(key, owner)
        return respond(request, await self.representations.render(row))

    async def _change(self, key: str, owner: str | None, changes: dict,
                      if_match: str | None) -> tuple[Row | None, dict]:
        """The row read, If-Match checked, what differs written only if the row is still the version
        read: two statements on one connection, and no row lock held between statements. When
        another write came first, an If-Match that names versions is checked again against the row
        as it now is (412, as a rule); without one, the change goes on top of whatever is stored and
        the row is read back. So it goes, without the first read, for the row's writes in the next
        CONTENDED_SECONDS, since racing a hot row would lose again: a hot row's writers wait for one
        another's statements inside the database, never for a lock held over round trips (and there
        a PATCH that changes nothing still makes a version). (None, {}) when there is no such row."""
        versioned = names_versions(if_match)
        async with self.database.session() as session:  # one turn in the connection queue for every statement
            if not versioned and self._contended.get(key, 0.0) >= time.monotonic():
                return await self._on_top(session, key, owner, changes)
            while True:
                row = await self.repository.find(key, owner, tx=session)
                changed = self._changed(row, changes, if_match)
                if not changed:
                    return row, changed
                written = await self.repository.update_unchanged(row, changed, tx=session)
                if written is not None:
                    return written, changed
                if not versioned:
                    self._contend(key)
                    return await self._on_top(session, key, owner, changed)

    async def _on_top(self, session: Executor, key: str, owner: str | None, changes: dict) -> tuple[Row | None, dict]:
        """`changes` written over the row as it is, then the row read back."""
        if not await self.repository.update_where(self.repository.scope(key, owner), changes, tx=session):
            return None, {}
        return await self.repository.find(key, owner, tx=session), changes

    def _contend(self, key: str) -> None:
        now = time.monotonic()
        if len(self._contended) >= CONTENDED_ROWS:
            self._contended = {hot: until for hot, until in self._contended.items() if until > now}
        self._contended[key] = now + CONTENDED_SECONDS

    def _changed(self, row: Row | None, changes: dict, if_match: str | None) -> dict:
        """What `changes` would change in `row`, once If-Match has been checked (412)."""
        if row is None:
            return {}
        if if_match is not None and not etag_listed(if_match, etag_of(row), weak=False):
            raise Problem(412, "Precondition Failed", f"The {self.name} has changed; fetch it again.")
        return {column: value for column, value in changes.items() if row[column] != value}

    async def delete(self, request: web.Request, key: str, *, owner: str | None = None) -> web.Response:
        """204 whether or not the row existed (DELETE is idempotent)."""
        if not exact(key):
            return web.Response(status=204)
        await self.repository.delete_where(self.repository.scope(key, owner))
        await self.written(key, owner)
        return web.Response(status=204)

    async def list(self, request: web.Request, query: dict, *, owner: str) -> web.Response:
        """The owner's rows, newest first: `{"items": [...], "next_cursor": str | null}`; the route
        declares `query=ListQuery`."""
        rows, next_cursor = await self.repository.page(
            owner, query["limit"], query["cursor"], stale_ok=await self.representations.replica_ok(owner))
        return web.json_response({"items": [await self.data(row) for row in rows], "next_cursor": next_cursor})


class Resources:
    """The RESOURCES service: defines resources, each name once."""

    def __init__(self, database: Database, cache: Cache, read_max_lag: float) -> None:
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

    def owned(self) -> list[Resource]:
        """The resources whose rows belong to a caller (defined with `owner=`)."""
        return [resource for resource in self._defined.values() if resource.repository.owner]
