"""The embedded default: SQLite through aiosqlite, behind the same interface as MySQL.

WAL lets one connection read while another writes. Writes are serialised by a lock in this process
and by `BEGIN IMMEDIATE` across processes (SQLite's write lock, waited for up to busy_timeout).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from typing import AsyncIterator

import aiosqlite

from plugins.data.api import DatabaseUnavailable, Params
from plugins.data.migrator import Migrations


class Session:
    def __init__(self, connection: aiosqlite.Connection, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with asyncio.timeout(self.timeout):
            cursor = await self.connection.execute(sql, tuple(params))
            return cursor.rowcount

    async def fetch_one(self, sql: str, params: Params = ()) -> dict | None:
        async with asyncio.timeout(self.timeout):
            async with self.connection.execute(sql, tuple(params)) as cursor:
                row = await cursor.fetchone()
        return dict(row) if row is not None else None

    async def fetch_all(self, sql: str, params: Params = ()) -> list[dict]:
        async with asyncio.timeout(self.timeout):
            async with self.connection.execute(sql, tuple(params)) as cursor:
                return [dict(row) for row in await cursor.fetchall()]


class SQLiteDatabase:
    dialect = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE already holds the database's write lock
    replica = False

    @staticmethod
    def insert_keeping(key: str) -> str:
        return " ON CONFLICT DO NOTHING"

    def __init__(self, path: str, timeout: float, migrations: Migrations) -> None:
        self.path = path
        self.timeout = timeout
        self.migrations = migrations
        self._write_lock = asyncio.Lock()
        self.waits = 0  # transactions that queued behind another writer of this process
        self.errors = 0  # lock timeouts answered 503
        self._writer: Session | None = None
        self._reader: Session | None = None

    async def start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._writer = Session(await self._connect(), self.timeout)
        self._reader = Session(await self._connect(), self.timeout)

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path, isolation_level=None)
        connection.row_factory = sqlite3.Row
        busy_ms = int(self.timeout * 1000)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", f"busy_timeout = {busy_ms}", "foreign_keys = ON"):
            await connection.execute(f"PRAGMA {pragma}")
        return connection

    async def close(self) -> None:
        for session in (self._writer, self._reader):
            if session is not None:
                await session.connection.close()

    async def fetch_one(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> dict | None:
        with self._unavailable_on_lock():
            return await self._reader.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> list[dict]:
        with self._unavailable_on_lock():
            return await self._reader.fetch_all(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """The writer, each statement committed by itself (the connection autocommits)."""
        async with self._write_lock:
            with self._unavailable_on_lock():
                yield self._writer

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        self.waits += self._write_lock.locked()
        async with self._write_lock:
            with self._unavailable_on_lock():
                await self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writer
                    await self._writer.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it already
                        await asyncio.shield(self._writer.execute("ROLLBACK"))
                    raise

    @contextlib.contextmanager
    def _unavailable_on_lock(self):
        try:
            yield
        except (TimeoutError, sqlite3.OperationalError) as exc:
            if isinstance(exc, TimeoutError) or "locked" in str(exc) or "busy" in str(exc):
                self.errors += 1
                raise DatabaseUnavailable(repr(exc)) from exc
            raise

    def locked(self, name: str):
        # SQLite's DDL is transactional: one immediate transaction both excludes and applies atomically.
        return self.transaction()

    async def has_table(self, name: str) -> bool:
        return await self.fetch_one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                                    (name,)) is not None

    async def ping(self) -> dict:
        await self.fetch_one("SELECT 1 AS ok")
        return {"dialect": self.dialect}
