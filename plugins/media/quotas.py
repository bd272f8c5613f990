"""Per-user upload quotas (MEDIA_QUOTA_*): uploads in progress, uploads per hour, stored bytes.

Every creation runs in one transaction that first locks the owner's row in `media_quotas`
(SELECT ... FOR UPDATE; SQLite's write transaction excludes by itself), so concurrent requests of
one owner are counted one after the other and none overshoots. Stored bytes count every record of
the owner, pending ones at their declared size: complete accepts exactly that size, so a pending
upload is a reservation. Deleting media frees its share at once."""
from __future__ import annotations

import math
import time

from marshmallow import Schema, fields

from gateway.problems import Problem
from plugins.data.api import Database, Executor, Resource, Row

HOUR = 3600


class QuotaSchema(Schema):
    owner = fields.Str(required=True)
    window_start = fields.Int(required=True)
    window_count = fields.Int(required=True)


class Quotas:
    def __init__(self, quotas: Resource, database: Database, settings) -> None:
        self.quotas = quotas.repository
        self.database = database
        self.pending = settings.quota_pending
        self.per_hour = settings.quota_uploads_per_hour
        self.bytes = settings.quota_bytes

    async def reserve(self, owner: str, size: int, insert) -> Row:
        """`await insert(tx)` (the new record) if the owner's quotas allow another upload of `size`
        bytes, in the transaction that counted them; else the problem that says which quota."""
        while True:
            async with self.database.transaction() as tx:
                quota = await self.quotas.lock(tx, owner)
                if quota is not None:
                    await self._count(tx, quota, size)
                    return await insert(tx)
            # The owner's first upload: the row is made outside the counting transaction, so that
            # concurrent first uploads queue on its lock instead of deadlocking on its insertion.
            await self.quotas.insert({"owner": owner, "window_start": int(time.time()), "window_count": 0},
                                     if_absent=True)

    async def _count(self, tx: Executor, quota: Row, size: int) -> None:
        now = int(time.time())
        start, count = quota["window_start"], quota["window_count"]
        if now >= start + HOUR:
            start, count = now, 0
        if count >= self.per_hour:
            wait = max(1, math.ceil(start + HOUR - now))
            raise Problem(429, "Too Many Requests", f"At most {self.per_hour} uploads an hour; retry in {wait} s.",
                          headers={"Retry-After": str(wait)})
        usage = await tx.fetch_one(
            "SELECT COALESCE(SUM(CASE WHEN status = ? THEN 1 ELSE 0 END), 0) AS pending,"
            " COALESCE(SUM(size), 0) AS stored FROM media WHERE owner = ?", ("pending", quota["owner"]))
        if usage["pending"] >= self.pending:
            raise Problem(429, "Too Many Requests", f"At most {self.pending} uploads in progress: complete or "
                          "delete one first (unfinished ones expire).")
        if size > self.bytes:
            raise Problem(413, "Content Too Large", f"{size} bytes is more than your whole storage quota "
                          f"({self.bytes} bytes).")
        if usage["stored"] + size > self.bytes:
            raise Problem(409, "Conflict", f"Your media use {usage['stored']} of your {self.bytes} bytes; "
                          f"{size} more do not fit. Delete some media first.")
        await self.quotas.update(tx, quota, {"window_start": start, "window_count": count + 1})
