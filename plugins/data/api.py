"""The data plugin's public API, the only module of it other plugins import: the service keys
DATABASE, CACHE, RESOURCES and ACCOUNTS, the protocols behind them, and the values they share (list queries,
not-found, timestamps, the database-unavailable problem).

    database = ctx.require(DATABASE)     # migrations, transactions across tables
    resources = ctx.require(RESOURCES)   # a table as an HTTP resource, in a few declared lines
    notes = resources.define("note", table="notes", schema=NoteSchema, owner="owner")

Tables follow one convention (see README, "Writing a plugin"): a string key column, the owner
column when rows belong to a caller, `version` (integer, starts at 1), and `created_at` and
`updated_at` as fixed-width UTC text (`utc_text()`); MySQL tables are utf8mb4 with the
`utf8mb4_bin` collation, so keys compare byte for byte.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate

from gateway.identifiers import exact
from gateway.plugin import ServiceKey
from gateway.problems import Problem

Params = Sequence[Any]
Row = dict[str, Any]


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")  # the last whole second formatted, reused within it


def utc_text(epoch: float | None = None) -> str:
    """UTC, millisecond precision, fixed width: sorts as text the way it sorts as time. Now, or the
    given epoch seconds. (datetime's strftime was ~20k instructions a call, a few calls a write.)"""
    global _second
    moment = time.time() if epoch is None else epoch
    second = int(moment // 1)
    micro = round((moment - second) * 1_000_000)  # datetime's rounding, of the fraction alone
    if micro == 1_000_000:
        second, micro = second + 1, 0
    if _second[0] != second:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{micro // 1000:03d}Z"


def not_found(name: str) -> Problem:
    return Problem(404, "Not Found", f"There is no such {name}.")


class DatabaseUnavailable(Problem):
    """The database could not be reached or did not answer in time; nothing was acknowledged."""

    def __init__(self, reason: str) -> None:
        super().__init__(503, "Service Unavailable", "The database is unavailable; retry shortly.",
                         headers={"Retry-After": "1"})
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class Cursor(fields.Str):
    """An opaque page position: base64url of the last row's (created_at, key)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            position = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, binascii.Error, RecursionError):
            raise ValidationError("Not a cursor this API returned.") from None
        if not (isinstance(position, list) and len(position) == 2
                and all(isinstance(p, str) and exact(p) for p in position)):
            raise ValidationError("Not a cursor this API returned.")
        return position


def encode_cursor(created_at: str, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, key]).encode()).rstrip(b"=").decode()


class ListQuery(Schema):
    """The query of a list route: `?limit=` (1-100, default 20) and `?cursor=` from the last page."""

    limit = fields.Int(load_default=20, validate=validate.Range(1, 100))
    cursor = Cursor(load_default=None)


class Executor(Protocol):
    """What a transaction (or a migration's locked session) offers; `?` placeholders on every engine."""

    async def execute(self, sql: str, params: Params = ()) -> int: ...  # the affected row count
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...


class Migrations(Protocol):
    def add(self, plugin: str, directory: Path | str) -> None:
        """Register a plugin's directory of `NNNN_name[.mysql|.sqlite].sql` files (plugins/data/migrator.py)."""


class Database(Protocol):
    """The "database" service: MySQL or SQLite behind one interface. Reads go to the writer unless
    `stale_ok=True`; a database that cannot be reached raises DatabaseUnavailable (503)."""

    dialect: str  # "mysql" or "sqlite"
    for_update: str  # " FOR UPDATE" where row locks exist, "" where the transaction already excludes
    replica: bool  # whether `stale_ok` reads go to a separate reader endpoint
    migrations: Migrations
    waits: int  # callers that queued for a connection (or the write lock), so far
    errors: int  # DatabaseUnavailable raised so far

    def insert_keeping(self, key: str) -> str:
        """The clause after an INSERT that keeps an existing row with that key instead of failing."""
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> dict: ...
    async def has_table(self, name: str) -> bool: ...
    async def fetch_one(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> Row | None: ...
    async def fetch_all(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> list[Row]: ...
    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement, atomic on its own (no transaction around it); the affected row count."""
    def session(self) -> AbstractAsyncContextManager[Executor]:
        """The writer for a few statements in a row, each atomic on its own (no transaction)."""
    def transaction(self) -> AbstractAsyncContextManager[Executor]: ...
    def locked(self, name: str) -> AbstractAsyncContextManager[Executor]:
        """An exclusive session across every process sharing the database (for migrations)."""


class Cache(Protocol):
    """The "cache" service: cache-aside with leases (plugins/data/cache.py)."""

    def key(self, *parts: str) -> bytes: ...
    def fetch(self, key: bytes, load: Callable[..., Awaitable[bytes | None]], *args) -> Awaitable[bytes | None]: ...
    async def invalidate(self, *keys: bytes) -> None: ...
    async def count(self, key: bytes, delta: int, ttl: int) -> int | None:
        """Add delta to a counter shared by every process on the cache (created at delta, gone ttl
        seconds after its creation) and return its new value; None when the cache cannot answer."""


Validator = Callable[[web.Request, Any], Awaitable[None]]  # raises marshmallow.ValidationError
Renderer = Callable[[Row], Awaitable[Any]]  # row -> an output field's value
AccountHook = Callable[[str], Awaitable[Mapping[str, int]]]  # (subject) -> counts of what it removed


class Repository(Protocol):
    """All SQL of one table. `equals` maps columns to values; every write bumps `version` and
    `updated_at`. Inside a caller's transaction pass `tx=`, and call the resource's `written()`
    once it has committed."""

    async def find(self, key: str, owner: str | None = None) -> Row | None: ...
    async def find_where(self, equals: dict, *, created_before: str | None = None, limit: int | None = None,
                         tx: Executor | None = None) -> list[Row]: ...
    async def insert(self, values: dict, *, if_absent: bool = False, tx: Executor | None = None) -> Row: ...
    async def lock(self, tx: Executor, key: str, owner: str | None = None) -> Row | None: ...
    async def update_where(self, equals: dict, changes: dict, *, tx: Executor | None = None) -> int: ...
    async def update(self, tx: Executor, row: Row, changes: dict) -> Row: ...
    async def delete_where(self, equals: dict, *, tx: Executor | None = None) -> int: ...


class Resource(Protocol):
    """A table served as an HTTP resource: cached representations with ETags, and handlers."""

    name: str
    repository: Repository

    def on_validate(self, field: str, validator: Validator) -> None: ...
    def on_render(self, field: str, renderer: Renderer) -> None: ...
    async def data(self, row: Row, view: str = ...) -> dict: ...
    async def written(self, key: str, owner: str | None = None) -> None: ...
    async def get(self, request: web.Request, key: str, *, owner: str | None = None, view: str = ...,
                  create: Callable[[], dict] | None = None) -> web.Response: ...
    async def create(self, request: web.Request, values: dict) -> web.Response: ...
    async def patch(self, request: web.Request, key: str, changes: dict, *, owner: str | None = None,
                    create: Callable[[], dict] | None = None) -> web.Response: ...
    async def delete(self, request: web.Request, key: str, *, owner: str | None = None) -> web.Response: ...
    async def list(self, request: web.Request, query: dict, *, owner: str) -> web.Response: ...


class Resources(Protocol):
    """The "resources" service."""

    def define(self, name: str, *, table: str, schema: type[Schema], key: str = "id", owner: str | None = None,
               views: dict[str, type[Schema]] | None = None) -> Resource: ...


class Accounts(Protocol):
    """The "accounts" service (plugins/data/accounts.py): everything a subject has, deleted durably
    and idempotently, with an audit record. Every resource defined with an `owner` column takes part
    by itself; a plugin with more (objects in a store, rows keyed by the subject) adds a hook:

        accounts.on_delete(hook)   # await hook(subject) -> {"what": count}; safe to run again

    Hooks run in registration order, before the owned resources lose their rows."""

    def on_delete(self, hook: AccountHook) -> None: ...
    async def delete(self, subject: str) -> dict[str, int]: ...  # raises a 503 Problem if it must be finished later


DATABASE: ServiceKey[Database] = ServiceKey("database", Database)
CACHE: ServiceKey[Cache] = ServiceKey("cache", Cache)
RESOURCES: ServiceKey[Resources] = ServiceKey("resources", Resources)
ACCOUNTS: ServiceKey[Accounts] = ServiceKey("accounts", Accounts)
