"""The profiles plugin's public API, the only module of it other plugins import: the PROFILES
service, through which a plugin adds a field to every profile (its output, an optional PATCH
field stored in a column its own migration adds, a validator). The media plugin adds the avatar
this way. (Work to do when an account is deleted goes through the data plugin's ACCOUNTS.)

    profiles = ctx.require(PROFILES)
    profiles.extend(ProfileField("avatar", fields.Nested(AvatarSchema, allow_none=True), render_avatar,
                                 column="avatar_media_id", patch=fields.Str(allow_none=True),
                                 validate=check_avatar))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from marshmallow import fields

from gateway.plugin import ServiceKey
from plugins.data.api import Renderer, Resource, Validator


@dataclass(frozen=True)
class ProfileField:
    """An output field of every profile (both views), computed by `render(row)`; with `column`, a
    PATCH /v1/me field of that name stored in that column (the extending plugin's migration adds
    it), described by `patch` and checked by `validate(request, value)`."""

    name: str
    output: fields.Field
    render: Renderer
    column: str | None = None
    patch: fields.Field | None = None
    validate: Validator | None = None


class Profiles(Protocol):
    """The PROFILES service. Extend in `setup`; `resource` (the profile resource, for writes in a
    transaction of the caller's and `written()` after them) is there once the app is built."""

    resource: Resource

    def extend(self, field: ProfileField) -> None: ...


PROFILES: ServiceKey[Profiles] = ServiceKey("profiles", Profiles)
