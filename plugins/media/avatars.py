"""Avatars: the media plugin's field of every profile, added through the profiles plugin's
extension point. PATCH /v1/me takes `avatar_media_id` only for a ready avatar of the caller's (or
null); the profile's `avatar` is `{"media_id", "url"}` with a URL that does not expire
(docs/decisions/avatar-urls.md), so a cached profile never carries a dead one; deleting the media a
profile shows clears the profile's avatar.
The column is the media plugin's own migration (0002_profile_avatar)."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from plugins.auth.api import PrincipalOf
from plugins.data.api import Executor, Resource
from plugins.profiles.api import ProfileField, Profiles


class AvatarSchema(Schema):
    media_id = fields.Str(required=True)
    url = fields.Str(allow_none=True)


class Avatars:
    """Extends the profiles with the avatar when made."""

    def __init__(self, profiles: Profiles, media: Resource, store, principal: PrincipalOf) -> None:
        self.profiles = profiles
        self.media = media
        self.store = store
        self.principal = principal
        profiles.extend(ProfileField(
            "avatar", fields.Nested(AvatarSchema, allow_none=True), self.render, column="avatar_media_id",
            patch=fields.Str(allow_none=True, validate=validate.Length(1, 64)), validate=self.validate))

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

    async def forget(self, tx: Executor, owner: str, media_id: str):
        """In the transaction deleting the media: clear the owner's avatar if it was this one, as a
        new version so that ETags change. Returns what to run after the commit, like a delete hook."""
        profile = self.profiles.resource
        cleared = await profile.repository.update_where({"id": owner, "avatar_media_id": media_id},
                                                        {"avatar_media_id": None}, tx=tx)
        return (lambda: profile.written(owner)) if cleared else None
