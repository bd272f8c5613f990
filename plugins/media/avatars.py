"""Avatars: the media plugin's part of the profile resource. PATCH /v1/me takes `avatar_media_id`
only for a ready avatar of the caller's (or null); the profile's `avatar` is `{"media_id", "url"}`
with a URL that does not expire (docs/decisions/avatar-urls.md), so a cached profile never carries
a dead one; deleting a profile deletes its owner's media, and deleting the media a profile shows
clears the profile's avatar."""
from __future__ import annotations

import asyncio
import logging

from marshmallow import ValidationError


log = logging.getLogger("gateway.media")


class Avatars:
    """Hooks itself into the profile resource when made."""

    def __init__(self, profiles, media, store, principal) -> None:
        self.profiles = profiles
        self.media = media
        self.store = store
        self.principal = principal
        profiles.on_validate("avatar_media_id", self.validate)
        profiles.on_render("avatar", self.render)
        profiles.on_delete(self.delete_media_of)

    async def validate(self, request, media_id: str | None) -> None:
        if media_id is None:
            return
        row = await self.media.row(media_id, self.principal(request).sub)
        if row is None or row["purpose"] != "avatar" or row["status"] != "ready":
            raise ValidationError("Not a ready avatar of yours: upload one with purpose avatar and complete it.")

    async def render(self, profile: dict) -> dict | None:
        media_id = profile["avatar_media_id"]
        row = media_id and await self.media.row(media_id, profile["id"])
        if not row:
            return None
        return {"media_id": media_id, "url": await self.store.public_url(row["object_key"])}

    async def forget(self, tx, owner: str, media_id: str):
        """In the transaction deleting the media: clear the owner's avatar if it was this one, as a
        new version so that ETags change. Returns what to run after the commit, like a delete hook."""
        cleared = await self.profiles.clear_if(tx, owner, "avatar_media_id", media_id)
        return (lambda: self.profiles.written(owner)) if cleared else None

    async def delete_media_of(self, tx, owner: str):
        """DELETE /v1/me: the records go with the profile, the objects after the commit."""
        rows = await tx.fetch_all("SELECT object_key FROM media WHERE owner = ?", (owner,))
        await tx.execute("DELETE FROM media WHERE owner = ?", (owner,))

        async def delete_objects() -> None:
            outcomes = await asyncio.gather(*(self.store.delete(row["object_key"]) for row in rows),
                                            return_exceptions=True)
            for row, outcome in zip(rows, outcomes):
                if isinstance(outcome, Exception):
                    log.warning("could not delete %s of a deleted profile: %r", row["object_key"], outcome)

        return delete_objects if rows else None
