"""The profile API of INTERFACE.md on the resource layer: GET/PATCH/DELETE /v1/me and
GET /v1/users/{id}. A profile is keyed by the token's subject and created from the token's claims
on the first GET (or PATCH) of /v1/me; concurrent first calls insert it once."""
from __future__ import annotations

import re
import unicodedata

from marshmallow import Schema, ValidationError, fields, validate

from gateway.plugin import SetupContext
from plugins.data.resources import Resource, Resources

# RFC 5646 well-formed tags: language[-extlang][-script][-region][-variant]*[-extension]*[-privateuse],
# or a private-use tag alone.
BCP47 = re.compile(
    r"(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?"
    r"|[Xx](?:-[A-Za-z0-9]{1,8})+)"
)


def language_tag(value: str) -> None:
    if not BCP47.fullmatch(value):
        raise ValidationError("Not a BCP 47 language tag (for example en, en-GB, zh-Hant-TW).")


def control_characters(allowed: str = ""):
    def check(value: str) -> None:
        if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
            raise ValidationError("Control characters are not allowed.")
    return check


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class AvatarSchema(Schema):
    media_id = fields.Str(required=True)
    url = fields.Str(allow_none=True)


class PublicProfileSchema(Schema):
    """Another user's public profile"""

    id = fields.Str(required=True)
    username = fields.Str(required=True)
    display_name = fields.Str(required=True)
    bio = fields.Str(required=True)
    avatar = fields.Nested(AvatarSchema, allow_none=True)


class ProfileSchema(PublicProfileSchema):
    """The caller's profile"""

    locale = fields.Str(allow_none=True)
    created_at = fields.Str(required=True)
    updated_at = fields.Str(required=True)
    version = fields.Int(required=True)


class ProfilePatchSchema(Schema):
    """Fields to change; unknown fields are refused"""

    display_name = fields.Str(validate=[validate.Length(1, 50), not_blank, control_characters()])
    bio = fields.Str(validate=[validate.Length(max=280), control_characters("\n")])
    locale = fields.Str(allow_none=True, validate=[validate.Length(max=35), language_tag])
    avatar_media_id = fields.Str(allow_none=True, validate=validate.Length(1, 64))


def from_claims(caller) -> dict:
    """A new profile's values from the token: names trimmed to fit, a locale only if well formed."""
    claims = caller.claims or {}
    username = caller.username or claims.get("cognito:username") or caller.sub
    name = claims.get("name") or claims.get("preferred_username") or username
    display_name = "".join(ch for ch in str(name) if unicodedata.category(ch) != "Cc").strip()[:50] or "user"
    locale = claims.get("locale")
    return {
        "id": caller.sub,
        "username": str(username)[:255],
        "display_name": display_name,
        "bio": "",
        "locale": locale if isinstance(locale, str) and len(locale) <= 35 and BCP47.fullmatch(locale) else None,
    }


async def avatar_without_media(row: dict) -> dict | None:
    media_id = row["avatar_media_id"]
    return {"media_id": media_id, "url": None} if media_id else None


async def no_avatars_without_media(request, media_id) -> None:
    if media_id is not None:
        raise ValidationError("Avatars need the media plugin, which is not loaded.")


def define(resources: Resources) -> Resource:
    profiles = resources.define("profile", table="profiles", schema=ProfileSchema,
                                views={"public": PublicProfileSchema})
    # The media plugin replaces both with its own (a ready avatar of the caller's; a download URL).
    profiles.on_render("avatar", avatar_without_media)
    profiles.on_validate("avatar_media_id", no_avatars_without_media)
    return profiles


def add_routes(ctx: SetupContext, profiles: Resource, principal) -> None:
    async def get_me(request):
        caller = principal(request)
        return await profiles.get(request, caller.sub, create=lambda: from_claims(caller))

    async def patch_me(request):
        caller = principal(request)
        return await profiles.patch(request, caller.sub, create=lambda: from_claims(caller))

    async def delete_me(request):
        return await profiles.delete(request, principal(request).sub)

    async def get_user(request):
        return await profiles.get(request, request.match_info["id"], view="public")

    tags = ("profile",)
    ctx.route("GET", "/v1/me", get_me, "The caller's profile, created from the token on first call",
              responses={200: ProfileSchema, 304: "Not modified (If-None-Match)"}, tags=tags)
    ctx.route("PATCH", "/v1/me", patch_me, "Change fields of the caller's profile",
              body=ProfilePatchSchema, tags=tags,
              responses={200: ProfileSchema, 412: "If-Match does not match the current ETag",
                         415: "The body is not application/json"})
    ctx.route("DELETE", "/v1/me", delete_me, "Delete the caller's profile and media records",
              responses={204: "Deleted"}, tags=tags)
    ctx.route("GET", "/v1/users/{id}", get_user, "Another user's public profile",
              responses={200: PublicProfileSchema, 304: "Not modified (If-None-Match)", 404: "No such user"},
              tags=tags)
