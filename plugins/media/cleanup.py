"""`python -m gateway media-cleanup`: removes pending media older than MEDIA_PENDING_EXPIRY_SECONDS
and their uploads (resumable ones aborted), then every object and resumable upload no record
accounts for (run it from a timer; on S3 the bucket's lifecycle rules are the backstop), and
recounts the quota counters that differ from the media table (plugins/media/quotas.py)."""
from __future__ import annotations

import time

from aiohttp import web

from plugins.data.api import Database, Repository, utc_text
from plugins.media.backends.store import incoming_key, media_id
from plugins.media.quotas import Quotas

BATCH = 500


async def remove_expired(media: Repository, quotas: Quotas, database: Database, store, pending_expiry: int) -> int:
    """The record goes first, and only while still pending, so an upload completed meanwhile keeps
    its object (its quota share goes back in the same transaction); an object whose deletion fails
    after that is left to the next run's orphan pass."""
    cutoff = utc_text(int(time.time()) - pending_expiry)
    removed = 0
    while rows := await media.find_where({"status": "pending"}, created_before=cutoff, limit=BATCH):
        for row in rows:
            async with database.transaction() as tx:
                expired = await media.delete_where({"id": row["id"], "status": "pending"}, tx=tx)
                if expired:
                    await quotas.release(tx, row, deleted=True)
            if expired:
                if row["upload_id"]:
                    await store.abort_multipart(incoming_key(row["object_key"]), row["upload_id"])
                for key in (incoming_key(row["object_key"]), row["object_key"]):
                    await store.delete(key)
                removed += 1
    return removed


def accounted(key: str, row: dict | None) -> bool:
    """Whether a record accounts for the object `key`: a published object belongs to its record,
    an upload to its record while that is pending (a ready one has published it already)."""
    if row is None:
        return False
    if key == row["object_key"]:
        return True
    return key == incoming_key(row["object_key"]) and row["status"] == "pending"


async def remove_orphans(media: Repository, store) -> int:
    """Objects no record accounts for: uploads re-posted after complete or after a delete, and
    whatever a failed deletion left. A record always exists before its form is handed out, so an
    object without one is never an upload in progress."""
    removed = 0
    async for key in store.keys():
        found = media_id(key)
        if not accounted(key, found and await media.find(found)):
            await store.delete(key)
            removed += 1
    return removed


async def abort_orphan_sessions(media: Repository, store, grace: int) -> int:
    """Resumable uploads no pending record names. A session's id is recorded just after it starts,
    so only those older than `grace` are aborted."""
    aborted, cutoff = 0, time.time() - grace
    async for key, upload_id, initiated in store.multipart_uploads():
        found = media_id(key)
        if initiated < cutoff and not (found and await media.find_where({"id": found, "upload_id": upload_id,
                                                                         "status": "pending"})):
            await store.abort_multipart(key, upload_id)
            aborted += 1
    return aborted


def command(media: Repository, quotas: Quotas, database: Database, store, settings):
    async def run(app: web.Application, args) -> int:
        runner = web.AppRunner(app)  # starts the app's resources (database, store) without serving
        await runner.setup()
        try:
            expired = await remove_expired(media, quotas, database, store, settings.pending_expiry)
            orphans = await remove_orphans(media, store)
            sessions = await abort_orphan_sessions(media, store, settings.upload_expiry)
            recounted = await quotas.reconcile()
        finally:
            await runner.cleanup()
        print(f"media-cleanup: {expired} expired pending uploads removed, {orphans} objects and {sessions} "
              f"resumable uploads without a record removed, {recounted} quotas recounted")
        return 0

    return run
