"""The one database interface features use, whichever engine is behind it.

SQL is written once with `?` placeholders and always with parameters, never formatted values:

    row = await database.fetch_one("SELECT * FROM notes WHERE id = ?", (note_id,))
    rows = await database.fetch_all("SELECT ...", params, stale_ok=True)   # replica allowed
    async with database.transaction() as tx:                              # writer, one transaction
        await tx.execute("UPDATE notes SET body = ? WHERE id = ?", (body, note_id))

Reads go to the writer unless `stale_ok=True`, which lets them use `DATABASE_READ_URL`. Reads are
retried once when the connection was lost; writes never are. A database that cannot be reached
raises `DatabaseUnavailable`, which answers 503 rather than 500.
"""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, Sequence

from gateway.problems import Problem
from plugins.data.migrator import Migrations

Params = Sequence[Any]


class DatabaseUnavailable(Problem):
    """The database could not be reached or did not answer in time; nothing was acknowledged."""

    def __init__(self, reason: str) -> None:
        super().__init__(503, "Service Unavailable", "The database is unavailable; retry shortly.",
                         headers={"Retry-After": "1"})
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class Executor(Protocol):
    """What a transaction (or a migration's locked session) offers."""

    async def execute(self, sql: str, params: Params = ()) -> int: ...  # the affected row count
    async def fetch_one(self, sql: str, params: Params = ()) -> dict | None: ...
    async def fetch_all(self, sql: str, params: Params = ()) -> list[dict]: ...


class Database(Protocol):
    dialect: str  # "mysql" or "sqlite", for the few statements that differ
    for_update: str  # " FOR UPDATE" where row locks exist, "" where the transaction already excludes
    replica: bool  # whether `stale_ok` reads go to a separate reader endpoint
    migrations: Migrations

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> dict: ...
    async def fetch_one(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> dict | None: ...
    async def fetch_all(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> list[dict]: ...
    def transaction(self) -> AbstractAsyncContextManager[Executor]: ...
    def locked(self, name: str) -> AbstractAsyncContextManager[Executor]:
        """An exclusive session across every process sharing the database (for migrations)."""


def open_database(settings) -> Database:
    """The configured engine, not yet connected (`start()` connects)."""
    migrations = Migrations()
    if settings.database_url.startswith("mysql:"):
        from plugins.data.mysql import MySQLDatabase

        return MySQLDatabase(settings, migrations)
    from plugins.data.sqlite import SQLiteDatabase

    return SQLiteDatabase(settings.database_url[len("sqlite:///"):], settings.query_timeout, migrations)
