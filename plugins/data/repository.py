"""All SQL of one resource's table, written once: the versioning rule (every write bumps `version`
and `updated_at`), owner scoping, newest-first pages. Table and column names come from code and
are checked to be plain identifiers; values always travel as parameters."""
from __future__ import annotations

import functools
import re
from typing import Awaitable, Iterable

from plugins.data.api import Database, Executor, Row, encode_cursor, utc_text

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(names: Iterable[str]) -> list[str]:
    """Table and column names come from code, never from requests; this keeps it that way."""
    names = list(names)
    for name in names:
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain SQL identifier")
    return names


# The statements' text per set of column names, made (and the names checked) once for each.

@functools.lru_cache(maxsize=1024)
def matching(columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{column} = ?" for column in identifiers(columns))


@functools.lru_cache(maxsize=1024)
def assigning(columns: tuple[str, ...]) -> str:
    return "".join(f"{column} = ?, " for column in identifiers(columns))


@functools.lru_cache(maxsize=1024)
def inserting(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(identifiers(columns))}) VALUES ({', '.join('?' * len(columns))})"


def conditions(equals: dict) -> tuple[str, tuple]:
    return matching(tuple(equals)), tuple(equals.values())


class Repository:
    def __init__(self, database: Database, table: str, key: str = "id", owner: str | None = None) -> None:
        identifiers([table, key, owner or "owner"])
        self.database = database
        self.table = table
        self.key = key
        self.owner = owner

    def scope(self, key: str, owner: str | None = None) -> dict:
        """The row `key`, and only if `owner` has it when the table has owners and one is given."""
        return {self.key: key} if owner is None or self.owner is None else {self.key: key, self.owner: owner}

    def find(self, key: str, owner: str | None = None, *, tx: Executor | None = None) -> Awaitable[Row | None]:
        """The current row, from the writer."""
        where, params = conditions(self.scope(key, owner))
        executor = self.database if tx is None else tx
        return executor.fetch_one(f"SELECT * FROM {self.table} WHERE {where}", params)

    def lock(self, tx: Executor, key: str, owner: str | None = None) -> Awaitable[Row | None]:
        """The row, locked against other writers until `tx` ends."""
        where, params = conditions(self.scope(key, owner))
        return tx.fetch_one(f"SELECT * FROM {self.table} WHERE {where}{self.database.for_update}", params)

    async def find_where(self, equals: dict, *, created_before: str | None = None, limit: int | None = None,
                         tx: Executor | None = None) -> list[Row]:
        where, params = conditions(equals)
        if created_before is not None:
            where, params = f"{where} AND created_at < ?", params + (created_before,)
        sql = f"SELECT * FROM {self.table} WHERE {where}"
        if limit is not None:
            sql, params = f"{sql} LIMIT ?", params + (limit,)
        return await (tx or self.database).fetch_all(sql, params)

    async def insert(self, values: dict, *, if_absent: bool = False, tx: Executor | None = None) -> Row:
        """Insert a row (created_at, updated_at and version filled in); with `if_absent` an existing
        row with that key is kept as it is. Returns the values inserted."""
        stamp = utc_text()
        row = {"created_at": stamp, "updated_at": stamp, "version": 1, **values}
        sql = inserting(self.table, tuple(row))
        if if_absent:
            sql += self.database.insert_keeping(self.key)
        await self._execute(sql, tuple(row.values()), tx)
        return row

    def update_where(self, equals: dict, changes: dict, *, tx: Executor | None = None) -> Awaitable[int]:
        """Set `changes` on the rows matching `equals`, as a new version; the count of rows changed."""
        return self._update(equals, changes, utc_text(), tx)

    async def update(self, tx: Executor, row: Row, changes: dict) -> Row:
        """Set `changes` on a row `lock()`ed in `tx`; returns the row as it now is."""
        stamp = utc_text()
        await self._update({self.key: row[self.key]}, changes, stamp, tx)
        return {**row, **changes, "version": row["version"] + 1, "updated_at": stamp}

    async def update_unchanged(self, row: Row, changes: dict, *, tx: Executor | None = None) -> Row | None:
        """Set `changes` on a row read without a lock, in one statement and only if it is still the
        version read (version and created_at: what its ETag says); the row as it now is, or None
        when another write came first."""
        stamp = utc_text()
        equals = {self.key: row[self.key], "version": row["version"], "created_at": row["created_at"]}
        if not await self._update(equals, changes, stamp, tx):
            return None
        return {**row, **changes, "version": row["version"] + 1, "updated_at": stamp}

    def _update(self, equals: dict, changes: dict, stamp: str, tx: Executor | None) -> Awaitable[int]:
        where, params = conditions(equals)
        sql = f"UPDATE {self.table} SET {assigning(tuple(changes))}version = version + 1, updated_at = ? WHERE {where}"
        return self._execute(sql, (*changes.values(), stamp, *params), tx)

    def delete_where(self, equals: dict, *, tx: Executor | None = None) -> Awaitable[int]:
        where, params = conditions(equals)
        return self._execute(f"DELETE FROM {self.table} WHERE {where}", params, tx)

    def _execute(self, sql: str, params: tuple, tx: Executor | None) -> Awaitable[int]:
        """In the caller's transaction, or as a statement of its own (one statement is atomic)."""
        return (self.database if tx is None else tx).execute(sql, params)

    async def page(self, owner: str, limit: int, cursor: list[str] | None, *, stale_ok: bool) -> tuple[list[Row], str | None]:
        """The owner's rows, newest first, and the cursor of the next page (None on the last)."""
        if self.owner is None:
            raise RuntimeError(f"{self.table} has no owner column to list by")
        sql = f"SELECT * FROM {self.table} WHERE {self.owner} = ?"
        params: tuple = (owner,)
        if cursor is not None:
            created_at, key = cursor
            sql += f" AND (created_at < ? OR (created_at = ? AND {self.key} < ?))"
            params += (created_at, created_at, key)
        sql += f" ORDER BY created_at DESC, {self.key} DESC LIMIT ?"
        rows = await self.database.fetch_all(sql, params + (limit + 1,), stale_ok=stale_ok)
        page = rows[:limit]
        more = len(rows) > limit
        return page, encode_cursor(page[-1]["created_at"], page[-1][self.key]) if more else None
