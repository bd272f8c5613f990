"""Per-user upload quotas (MEDIA_QUOTA_*): uploads in progress, uploads per hour, stored bytes.

The owner's row in `media_quotas` holds the hourly window and two counters: `pending_count`, the
uploads in progress, and `stored_bytes`, every record's size, pending ones at their declared size
(complete accepts exactly that size, so a pending upload is a reservation). A creation is admitted
and counted by one UPDATE of that row whose WHERE holds every limit, then its record is inserted in
the same transaction: BEGIN, UPDATE, INSERT, COMMIT. The UPDATE locks the row until the commit
(SQLite's write transaction excludes by itself), so concurrent creations of one owner are counted
one after the other and none overshoots. Whatever completes or removes a record gives its share
back in the transaction that does it (`release`): complete, delete, the cleanup's expiry.

When the UPDATE admits nothing, the row is missing (the owner's first upload: made, then decided
on a recount, as `media` may hold records already) or a limit refuses. Then the counters are not
taken at their word: under the row's lock the truth is recounted from `media` and written back,
and the decision (429 for the hour or for uploads in progress, 413, 409) is taken on it. Counters that are too high therefore never refuse
an upload that fits, and are healed by the first refusal they cause. Counters that are too low
(during a rolling deploy, instances without them create and remove records without counting) are
put right by `reconcile`, which media-cleanup runs every hour."""
from __future__ import annotations

import math
import time
from typing import Awaitable

from marshmallow import Schema, fields

from gateway.problems import Problem
from plugins.data.api import Database, Executor, Resource, Row, utc_text

HOUR = 3600

# MySQL assigns a single-table UPDATE's columns left to right, each from the values already
# assigned; SQLite from the old row. Every expression here reads only its own column or columns
# assigned after it (window_count before window_start), so both engines compute the same.
# A matching row always changes (pending_count), so MySQL's count of changed rows is the
# count of matched rows here.
ADMIT = ("UPDATE media_quotas SET"
         " window_count = CASE WHEN window_start <= ? THEN 1 ELSE window_count + 1 END,"
         " window_start = CASE WHEN window_start <= ? THEN ? ELSE window_start END,"
         " pending_count = pending_count + 1, stored_bytes = stored_bytes + ?,"
         " version = version + 1, updated_at = ?"
         " WHERE owner = ? AND (window_start <= ? OR window_count < ?)"
         " AND pending_count < ? AND stored_bytes + ? <= ?")
RELEASE = ("UPDATE media_quotas SET pending_count = pending_count - ?, stored_bytes = stored_bytes - ?,"
           " version = version + 1, updated_at = ? WHERE owner = ?")
USAGE = ("SELECT COALESCE(SUM(CASE WHEN status = ? THEN 1 ELSE 0 END), 0) AS pending,"
         " COALESCE(SUM(size), 0) AS stored FROM media WHERE owner = ?")
DRIFTED = ("SELECT owner FROM media_quotas WHERE pending_count <>"
           " (SELECT COUNT(*) FROM media WHERE media.owner = media_quotas.owner AND media.status = ?)"
           " OR stored_bytes <> (SELECT COALESCE(SUM(size), 0) FROM media WHERE media.owner = media_quotas.owner)")


class QuotaSchema(Schema):
    owner = fields.Str(required=True)
    window_start = fields.Int(required=True)
    window_count = fields.Int(required=True)
    pending_count = fields.Int(required=True)
    stored_bytes = fields.Int(required=True)


class Quotas:
    def __init__(self, quotas: Resource, database: Database, settings) -> None:
        self.quotas = quotas.repository
        self.database = database
        self.pending = settings.quota_pending
        self.per_hour = settings.quota_uploads_per_hour
        self.bytes = settings.quota_bytes

    async def reserve(self, owner: str, size: int, insert) -> Row:
        """`await insert(tx)` (the new record) if the owner's quotas allow another upload of `size`
        bytes, in the transaction that counted it; else the problem that says which quota."""
        made = False  # the row was just made here
        while True:
            async with self.database.transaction() as tx:
                if not made and await self._admit(tx, owner, size):
                    return await insert(tx)
                quota = await self.quotas.lock(tx, owner)
                if quota is not None:
                    refusal = await self._recount(tx, quota, size)
                    if refusal is None:
                        return await insert(tx)
            if quota is not None:
                raise refusal  # after the commit, which kept the counters recounted
            # The owner's first upload: the row is made outside the counting transaction, so that
            # concurrent first uploads queue on its lock instead of deadlocking on its insertion.
            await self.quotas.insert({"owner": owner, "window_start": int(time.time()), "window_count": 0},
                                     if_absent=True)
            # Its counters start at zero, but media may be there without a row (a creation that committed
            # between an account deletion's erasing of the media and of the quota row): the next turn
            # decides on the recount, as after a refusal.
            made = True

    def _admit(self, tx: Executor, owner: str, size: int) -> Awaitable[int]:
        """The UPDATE counting the upload if the quotas allow it: the statement itself, awaited by the
        caller (each frame between a handler and the socket is resumed on every wait); 1 if admitted."""
        now = int(time.time())
        expired = now - HOUR  # a window that started then or earlier is over
        return tx.execute(ADMIT, (expired, expired, now, size, utc_text(), owner, expired, self.per_hour,
                                  self.pending, size, self.bytes))

    async def _recount(self, tx: Executor, quota: Row, size: int) -> Problem | None:
        """On the locked row the UPDATE refused: the counters set to the truth, and the upload
        counted if that allows it; else the problem that refuses it."""
        now = int(time.time())
        start, count = quota["window_start"], quota["window_count"]
        if now >= start + HOUR:
            start, count = now, 0
        if count >= self.per_hour:
            wait = max(1, math.ceil(start + HOUR - now))
            return Problem(429, "Too Many Requests", f"At most {self.per_hour} uploads an hour; retry in {wait} s.",
                           headers={"Retry-After": str(wait)})
        quota = await self._recounted(tx, quota)
        pending, stored = quota["pending_count"], quota["stored_bytes"]
        refusal = None
        if pending >= self.pending:
            refusal = Problem(429, "Too Many Requests", f"At most {self.pending} uploads in progress: complete or "
                              "delete one first (unfinished ones expire).")
        elif size > self.bytes:
            refusal = Problem(413, "Content Too Large", f"{size} bytes is more than your whole storage quota "
                              f"({self.bytes} bytes).")
        elif stored + size > self.bytes:
            refusal = Problem(409, "Conflict", f"Your media use {stored} of your {self.bytes} bytes; "
                              f"{size} more do not fit. Delete some media first.")
        if refusal is None:
            await self.quotas.update(tx, quota, {"window_start": start, "window_count": count + 1,
                                                 "pending_count": pending + 1, "stored_bytes": stored + size})
        return refusal

    async def _recounted(self, tx: Executor, quota: Row) -> Row:
        """The locked row with its counters set to what the media table says."""
        usage = await tx.fetch_one(USAGE, ("pending", quota["owner"]))
        truth = {"pending_count": usage["pending"], "stored_bytes": usage["stored"]}
        if truth != {column: quota[column] for column in truth}:
            quota = await self.quotas.update(tx, quota, truth)
        return quota

    async def reconcile(self) -> int:
        """Every owner's counters that differ from the media table, recounted under the row's lock
        (the search reads the replica, which may be behind: the recount decides); how many."""
        recounted = 0
        for drifted in await self.database.fetch_all(DRIFTED, ("pending",), stale_ok=True):
            async with self.database.transaction() as tx:
                quota = await self.quotas.lock(tx, drifted["owner"])
                if quota is not None and await self._recounted(tx, quota) is not quota:
                    recounted += 1
        return recounted

    async def release(self, tx: Executor, row: Row, *, deleted: bool) -> None:
        """In the transaction that completes the record `row` (as it was before) or deletes it: its
        place among the uploads in progress if it was pending, and its bytes if it is deleted."""
        pending = 1 if row["status"] == "pending" else 0
        await tx.execute(RELEASE, (pending, row["size"] if deleted else 0, utc_text(), row["owner"]))
