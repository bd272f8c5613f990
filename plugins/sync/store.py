"""All SQL of the sync plugin: datasets and their records, the push transaction, pulls and deletion.

A push takes, in this order and always in this order, the caller's row in sync_owners, the
dataset's row and the rows of the keys it changes, each `SELECT ... FOR UPDATE`: pushes to one
caller's datasets queue behind each other, which is what makes the count of datasets, the dataset's
size and every record's sync count checks race-free. Within a push every change gets the dataset's
next sync count, so "changes since N" is `sync_count > N` and a pull can page by (sync_count, key).
The first pushes of a new caller can still deadlock each other on the gap of the row none has yet
(InnoDB error 1213); the whole push is then retried, a bounded number of times.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field

from plugins.data.api import Database, DatabaseUnavailable, Executor, Resource, Row, utc_text

DEADLOCK = 1213  # ER_LOCK_DEADLOCK: InnoDB rolled this transaction back; it may simply run again
NAME_MAX = 128  # the column's width (and Cognito Sync's DatasetName limit)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def size(key: str, value: str | None) -> int:
    """What a live record counts against the dataset's byte limit: its key and value in UTF-8."""
    return 0 if value is None else len(key.encode()) + len(value.encode())


def deadlocked(exc: BaseException) -> bool:
    return bool(getattr(exc, "args", None)) and exc.args[0] == DEADLOCK


class Refused(Exception):
    """A push that breaks a limit: `field` is the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Conflict(Exception):
    """Changes made from stale sync counts: the server's current records for those keys."""

    records: list[Row] = field(default_factory=list)


def absent(key: str) -> Row:
    """The server's side of a key it never had: nothing, at sync count 0."""
    return {"record_key": key, "value": None, "sync_count": 0, "last_modified": None, "deleted": 1}


def record(row: Row) -> dict:
    return {"key": row["record_key"], "value": row["value"], "sync_count": row["sync_count"],
            "last_modified": row["last_modified"], "deleted": bool(row["deleted"])}


class Store:
    def __init__(self, database: Database, owners: Resource, settings) -> None:
        self.database = database
        self.owners = owners  # the sync_owners resource: the cached dataset list hangs off its rows
        self.settings = settings

    async def datasets(self, owner: str) -> list[dict]:
        rows = await self.database.fetch_all(
            "SELECT name, sync_count, records, bytes, created_at, updated_at FROM sync_datasets WHERE owner = ? "
            "ORDER BY name", (owner,))
        return [{"name": row["name"], "sync_count": row["sync_count"], "records": row["records"],
                 "bytes": row["bytes"], "created_at": row["created_at"], "last_modified": row["updated_at"]}
                for row in rows]

    async def dataset(self, owner: str, name: str) -> Row | None:
        return await self.database.fetch_one(
            "SELECT * FROM sync_datasets WHERE owner = ? AND name = ?", (owner, name))

    async def changes(self, owner: str, name: str, since: int, after: tuple[int, str] | None,
                      limit: int) -> list[Row]:
        """Records changed after sync count `since` (tombstones included), in (sync_count, key) order,
        from `after` on; one more than `limit` if there are more."""
        sql = "SELECT * FROM sync_records WHERE owner = ? AND dataset = ? AND sync_count > ?"
        params: tuple = (owner, name, since)
        if after is not None:
            sql += " AND (sync_count > ? OR (sync_count = ? AND key_hash > ?))"
            params += (after[0], after[0], after[1])
        return await self.database.fetch_all(f"{sql} ORDER BY sync_count, key_hash LIMIT ?", params + (limit + 1,))

    async def push(self, owner: str, name: str, changes: list[dict]) -> tuple[int, list[Row]]:
        """Apply `changes` ({key, value (None: delete), sync_count}) at once: the dataset's new sync
        count and the records as written. Raises Conflict or Refused, having written nothing."""
        for attempt in range(1, self.settings.push_attempts + 1):
            try:
                async with self.database.transaction() as tx:
                    return await self._push(tx, owner, name, changes)
            except Exception as exc:
                if not deadlocked(exc):
                    raise
            await asyncio.sleep(random.uniform(0, 0.005 * 2 ** attempt))  # apart, so they do not meet again
        raise DatabaseUnavailable(f"push to a dataset deadlocked {self.settings.push_attempts} times")

    async def _push(self, tx: Executor, owner: str, name: str, changes: list[dict]) -> tuple[int, list[Row]]:
        owners = self.owners.repository
        owner_row = await owners.lock(tx, owner)
        if owner_row is None:
            await owners.insert({"id": owner}, if_absent=True, tx=tx)
            owner_row = await owners.lock(tx, owner)
        for_update = self.database.for_update
        dataset = await tx.fetch_one(f"SELECT * FROM sync_datasets WHERE owner = ? AND name = ?{for_update}",
                                     (owner, name))
        if dataset is None:
            count = await tx.fetch_one("SELECT COUNT(*) AS n FROM sync_datasets WHERE owner = ?", (owner,))
            if count["n"] >= self.settings.max_datasets:
                raise Refused("name", f"There are already {count['n']} datasets, the most allowed "
                                      f"({self.settings.max_datasets}); delete one first.")
            stamp = utc_text()
            dataset = {"owner": owner, "name": name, "sync_count": 0, "records": 0, "bytes": 0,
                       "created_at": stamp, "updated_at": stamp}
            await tx.execute("INSERT INTO sync_datasets (owner, name, sync_count, records, bytes, created_at, "
                             "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(dataset.values()))
        hashes = [key_hash(change["key"]) for change in changes]
        marks = ", ".join("?" * len(hashes))
        current = {row["key_hash"]: row for row in await tx.fetch_all(
            f"SELECT * FROM sync_records WHERE owner = ? AND dataset = ? AND key_hash IN ({marks}){for_update}",
            (owner, name, *hashes))}
        stale = [current.get(h) or absent(change["key"]) for h, change in zip(hashes, changes)
                 if (current[h]["sync_count"] if h in current else 0) != change["sync_count"]]
        if stale:
            raise Conflict(stale)
        records, size_now = dataset["records"], dataset["bytes"]
        for h, change in zip(hashes, changes):
            old = current.get(h)
            was_live = old is not None and not old["deleted"]
            records += (change["value"] is not None) - was_live
            size_now += size(change["key"], change["value"]) - (size(old["record_key"], old["value"]) if was_live else 0)
        if records > self.settings.max_records:
            raise Refused("changes", f"The dataset would hold {records} records; at most "
                                     f"{self.settings.max_records} are allowed.")
        if size_now > self.settings.max_dataset_bytes:
            raise Refused("changes", f"The dataset would hold {size_now} bytes of keys and values; at most "
                                     f"{self.settings.max_dataset_bytes} are allowed.")
        sync_count, stamp = dataset["sync_count"] + 1, utc_text()
        written = []
        for h, change in zip(hashes, changes):
            row = {"owner": owner, "dataset": name, "key_hash": h, "record_key": change["key"],
                   "value": change["value"], "deleted": int(change["value"] is None), "sync_count": sync_count,
                   "last_modified": stamp}
            if h in current:
                await tx.execute("UPDATE sync_records SET value = ?, deleted = ?, sync_count = ?, last_modified = ? "
                                 "WHERE owner = ? AND dataset = ? AND key_hash = ?",
                                 (row["value"], row["deleted"], sync_count, stamp, owner, name, h))
            else:
                await tx.execute("INSERT INTO sync_records (owner, dataset, key_hash, record_key, value, deleted, "
                                 "sync_count, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(row.values()))
            written.append(row)
        await tx.execute("UPDATE sync_datasets SET sync_count = ?, records = ?, bytes = ?, updated_at = ? "
                         "WHERE owner = ? AND name = ?", (sync_count, records, size_now, stamp, owner, name))
        await owners.update(tx, owner_row, {})  # a new version: the dataset list's ETag changes
        return sync_count, written

    async def delete(self, owner: str, name: str) -> bool:
        """Delete a dataset and its records; whether there was one."""
        async with self.database.transaction() as tx:
            owner_row = await self.owners.repository.lock(tx, owner)
            if owner_row is None:
                return False
            deleted = await tx.execute("DELETE FROM sync_datasets WHERE owner = ? AND name = ?", (owner, name))
            await tx.execute("DELETE FROM sync_records WHERE owner = ? AND dataset = ?", (owner, name))
            if deleted:
                await self.owners.repository.update(tx, owner_row, {})
        return bool(deleted)

    async def delete_owner(self, tx: Executor, owner: str) -> list[str]:
        """Everything of a caller's, in the caller's (account-deleting) transaction: the dataset names.
        The caller's row is locked first, as a push does, so the two never deadlock."""
        await self.owners.repository.lock(tx, owner)
        names = [row["name"] for row in await tx.fetch_all("SELECT name FROM sync_datasets WHERE owner = ?", (owner,))]
        await tx.execute("DELETE FROM sync_records WHERE owner = ?", (owner,))
        await tx.execute("DELETE FROM sync_datasets WHERE owner = ?", (owner,))
        await self.owners.repository.delete_where({"id": owner}, tx=tx)
        return names
