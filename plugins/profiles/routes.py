"""The profile API of INTERFACE.md on the resource layer: GET/PATCH/DELETE /v1/me and
GET /v1/users/{id}. A profile is keyed by the token's subject and created from the token's claims
on the first GET (or PATCH) of /v1/me; concurrent first calls insert it once. Other plugins' fields
(api.ProfileField) join the schemas when the service installs the resource, after every setup."""
from __future__ import annotations

import re
import unicodedata

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate

from gateway.plugin import SetupContext
from plugins.auth.api import PrincipalOf
from plugins.data.api import Accounts, Resource, Resources
from plugins.profiles.api import ProfileField

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


# Embeddings, overrides and isolates: in a name they reorder the text shown around it ("abc\u202egnp.exe").
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(value: str) -> bool:
    """Whether anything shows once format characters (Cf: zero-width, joiners, marks) are removed."""
    return any(unicodedata.category(ch) != "Cf" and not ch.isspace() for ch in value)


def shown_as_written(value: str) -> None:
    if any(ch in BIDI_CONTROLS for ch in value):
        raise ValidationError("Bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069) are not allowed.")
    if not visible(value):
        raise ValidationError("Must show something: invisible characters alone are not a name.")


class PublicProfile(Schema):
    id = fields.Str(required=True)
    username = fields.Str(required=True)
    display_name = fields.Str(required=True)
    bio = fields.Str(required=True)


class Profile(PublicProfile):
    locale = fields.Str(allow_none=True)
    created_at = fields.Str(required=True)
    updated_at = fields.Str(required=True)
    version = fields.Int(required=True)


class ProfilePatch(Schema):
    display_name = fields.Str(validate=[validate.Length(1, 50), control_characters(), shown_as_written])
    bio = fields.Str(validate=[validate.Length(max=280), control_characters("\n")])
    locale = fields.Str(allow_none=True, validate=[validate.Length(max=35), language_tag])


def extended(base: type[Schema], name: str, doc: str, added: dict[str, fields.Field]) -> type[Schema]:
    """`base` with the fields other plugins added, named as the API documents it."""
    return type(name, (base,), {"__doc__": doc, **added})


def from_claims(caller) -> dict:
    """A new profile's values from the token: names trimmed to fit and rid of control characters
    ("user" if nothing visible is left), a locale only if well formed."""
    claims = caller.claims or {}
    username = caller.username or claims.get("cognito:username") or caller.sub
    name = claims.get("name") or claims.get("preferred_username") or username
    display_name = "".join(ch for ch in str(name) if unicodedata.category(ch) != "Cc" and ch not in BIDI_CONTROLS)
    display_name = display_name.strip()[:50]
    locale = claims.get("locale")
    return {
        "id": caller.sub,
        "username": str(username)[:255],
        "display_name": display_name if visible(display_name) else "user",
        "bio": "",
        "locale": locale if isinstance(locale, str) and len(locale) <= 35 and BCP47.fullmatch(locale) else None,
    }


class ProfileService:
    """The PROFILES service: collects other plugins' fields during setup, then defines the profile
    resource and its routes with them (`install`, after every setup). A deleted account's profile
    goes through the account hook (`forget`)."""

    def __init__(self, resources: Resources, principal: PrincipalOf, accounts: Accounts) -> None:
        self.resources = resources
        self.principal = principal
        self.accounts = accounts
        self.fields: list[ProfileField] = []
        self.resource: Resource | None = None
        accounts.on_delete(self.forget)

    def extend(self, field: ProfileField) -> None:
        self.fields.append(field)

    async def forget(self, subject: str) -> dict[str, int]:
        """The account hook: the profile row (keyed by the subject, so not an owned resource) and its views."""
        removed = await self.resource.repository.delete_where({"id": subject})
        await self.resource.written(subject)
        return {"profile": removed}

    def install(self, ctx: SetupContext) -> None:
        outputs = {field.name: field.output for field in self.fields}
        public = extended(PublicProfile, "PublicProfileSchema", "Another user's public profile", outputs)
        own = extended(Profile, "ProfileSchema", "The caller's profile", outputs)
        patch = extended(ProfilePatch, "ProfilePatchSchema", "Fields to change; unknown fields are refused",
                         {field.column: field.patch for field in self.fields if field.column})
        self.resource = profiles = self.resources.define("profile", table="profiles", schema=own,
                                                         views={"public": public})
        for field in self.fields:
            profiles.on_render(field.name, field.render)
            if field.validate is not None:
                profiles.on_validate(field.column, field.validate)
        add_routes(ctx, profiles, self.principal, self.accounts, own, public, patch)


def add_routes(ctx: SetupContext, profiles: Resource, principal: PrincipalOf, accounts: Accounts,
               own: type[Schema], public: type[Schema], patch: type[Schema]) -> None:
    async def get_me(request):
        caller = principal(request)
        return await profiles.get(request, caller.sub, create=lambda: from_claims(caller))

    async def patch_me(request, body):
        caller = principal(request)
        return await profiles.patch(request, caller.sub, body, create=lambda: from_claims(caller))

    async def delete_me(request):
        await accounts.delete(principal(request).sub)
        return web.Response(status=204)

    async def get_user(request):
        return await profiles.get(request, request.match_info["id"], view="public")

    tags = ("profile",)
    ctx.route("GET", "/v1/me", get_me, "The caller's profile, created from the token on first call",
              responses={200: own, 304: "Not modified (If-None-Match)"}, tags=tags)
    ctx.route("PATCH", "/v1/me", patch_me, "Change fields of the caller's profile",
              body=patch, tags=tags,
              responses={200: own, 412: "If-Match does not match the current ETag",
                         415: "The body is not application/json"})
    ctx.route("DELETE", "/v1/me", delete_me,
              "Delete the caller's account: every record of every plugin, stored objects, cached copies",
              responses={204: "Deleted (also when there was nothing)",
                         503: "Recorded and partly done: it finishes on a retry or by itself shortly"}, tags=tags)
    ctx.route("GET", "/v1/users/{id}", get_user, "Another user's public profile",
              responses={200: public, 304: "Not modified (If-None-Match)", 404: "No such user"},
              tags=tags)
