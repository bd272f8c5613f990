"""`python -m gateway media-cleanup`: removes pending media older than MEDIA_PENDING_EXPIRY_SECONDS
and their objects (run it from a timer; on S3 the bucket's lifecycle rule is the backstop)."""
from __future__ import annotations

import time

from aiohttp import web

from plugins.data.api import Repository, utc_text

BATCH = 500


async def remove_expired(media: Repository, store, pending_expiry: int) -> int:
    """The record goes first, and only while still pending, so an upload completed meanwhile keeps
    its object; an object whose deletion fails after that is left to the lifecycle rule."""
    cutoff = utc_text(int(time.time()) - pending_expiry)
    removed = 0
    while rows := await media.find_where({"status": "pending"}, created_before=cutoff, limit=BATCH):
        for row in rows:
            if await media.delete_where({"id": row["id"], "status": "pending"}):
                await store.delete(row["object_key"])
                removed += 1
    return removed


def command(media: Repository, store, pending_expiry: int):
    async def run(app: web.Application, args) -> int:
        runner = web.AppRunner(app)  # starts the app's resources (database, store) without serving
        await runner.setup()
        try:
            removed = await remove_expired(media, store, pending_expiry)
        finally:
            await runner.cleanup()
        print(f"media-cleanup: {removed} expired pending uploads removed")
        return 0

    return run
