"""The media API of INTERFACE.md: POST /v1/media (a record and a presigned upload), POST
/v1/media/{id}/complete, GET /v1/media/{id} (with a download URL once ready), GET /v1/media (the
caller's, newest first) and DELETE /v1/media/{id}. Another user's media answers 404."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from aiohttp import web
from marshmallow import Schema, fields, validate

from gateway.problems import Problem, ValidationProblem
from plugins.auth.api import PrincipalOf
from plugins.data.api import Database, ListQuery, Resource, not_found, utc_text
from plugins.media.avatars import Avatars
from plugins.media.backends.store import object_key

PURPOSES = ("avatar", "attachment")


class CreateMediaSchema(Schema):
    """What the phone is about to upload"""

    purpose = fields.Str(required=True, validate=validate.OneOf(PURPOSES))
    content_type = fields.Str(required=True, validate=validate.Length(1, 127))
    size = fields.Int(required=True, strict=True, validate=validate.Range(min=1))


class MediaSchema(Schema):
    """A media record; `url` and `url_expires_at` once it is ready"""

    id = fields.Str(required=True)
    purpose = fields.Str(required=True)
    status = fields.Str(required=True, metadata={"enum": ["pending", "ready"]})
    content_type = fields.Str(required=True)
    size = fields.Int(required=True)
    created_at = fields.Str(required=True)
    url = fields.Str(dump_only=True)
    url_expires_at = fields.Str(dump_only=True)


class UploadSchema(Schema):
    """Post `fields` and then the file (as the last field, `file`) to `url` as multipart/form-data"""

    method = fields.Str(required=True)
    url = fields.Str(required=True)
    expires_at = fields.Str(required=True)
    fields = fields.Dict(keys=fields.Str(), values=fields.Str(), required=True)  # last: it shadows the module


class CreatedMediaSchema(Schema):
    media = fields.Nested(MediaSchema, required=True)
    upload = fields.Nested(UploadSchema, required=True)


class MediaPageSchema(Schema):
    items = fields.List(fields.Nested(MediaSchema), required=True)
    next_cursor = fields.Str(allow_none=True, required=True)


@dataclass(frozen=True)
class Purpose:
    types: tuple[str, ...]
    max_bytes: int


class MediaApi:
    def __init__(self, media: Resource, store, avatars: Avatars, database: Database, principal: PrincipalOf,
                 settings) -> None:
        self.media = media
        self.store = store
        self.avatars = avatars
        self.database = database
        self.principal = principal
        self.settings = settings
        self.purposes = {
            "avatar": Purpose(settings.avatar_types, settings.avatar_max_bytes),
            "attachment": Purpose(settings.attachment_types, settings.attachment_max_bytes),
        }

    async def _own(self, request: web.Request) -> tuple[str, dict]:
        owner = self.principal(request).sub
        row = await self.media.row(request.match_info["id"], owner)
        if row is None:
            raise not_found("media")
        return owner, row

    async def _represent(self, request: web.Request, row: dict) -> web.Response:
        data = await self.media.data(row)
        if row["status"] == "ready":
            expires = int(time.time()) + self.settings.download_expiry
            data["url"] = await self.store.download_url(row["object_key"], expires)
            data["url_expires_at"] = utc_text(expires)
        # The URL is a credential until it expires: nothing on the way keeps a copy.
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    async def create(self, request: web.Request, body: dict) -> web.Response:
        owner = self.principal(request).sub
        purpose = self.purposes[body["purpose"]]
        errors = {}
        if body["content_type"] not in purpose.types:
            errors["content_type"] = [f"A {body['purpose']} is one of: {', '.join(purpose.types)}."]
        if body["size"] > purpose.max_bytes:
            errors["size"] = [f"A {body['purpose']} is at most {purpose.max_bytes} bytes."]
        if errors:
            raise ValidationProblem(errors)
        media_id = secrets.token_urlsafe(16)
        key = object_key(body["purpose"], owner, media_id, body["content_type"])
        expires = int(time.time()) + self.settings.upload_expiry
        url, form = await self.store.presign_upload(key, body["content_type"], purpose.max_bytes, expires)
        row = await self.media.repository.insert(
            {"id": media_id, "owner": owner, "status": "pending", "object_key": key, **body})
        return web.json_response(
            {"media": await self.media.data(row),
             "upload": {"method": "POST", "url": url, "fields": form, "expires_at": utc_text(expires)}},
            status=201, headers={"Location": f"/v1/media/{media_id}", "Cache-Control": "no-store"},
        )

    async def complete(self, request: web.Request) -> web.Response:
        owner, row = await self._own(request)
        if row["status"] == "ready":
            return await self._represent(request, row)
        head = await self.store.head(row["object_key"])
        limit = self.purposes[row["purpose"]].max_bytes
        if head is None:
            raise Problem(409, "Conflict", "Nothing has been uploaded for this media yet.")
        if head.content_type != row["content_type"]:
            raise Problem(409, "Conflict", f"The upload is {head.content_type}, not {row['content_type']}.")
        if not 1 <= head.size <= limit:
            raise Problem(409, "Conflict", f"The upload's size ({head.size}) is not between 1 and {limit} bytes.")
        await self.store.finish(row["object_key"])
        await self.media.repository.update_where({"id": row["id"], "owner": owner, "status": "pending"},
                                                 {"status": "ready", "size": head.size})
        await self.media.written(row["id"], owner)
        _, row = await self._own(request)
        return await self._represent(request, row)

    async def get(self, request: web.Request) -> web.Response:
        _, row = await self._own(request)
        return await self._represent(request, row)

    async def list(self, request: web.Request, query: dict) -> web.Response:
        return await self.media.list(request, query, owner=self.principal(request).sub)

    async def delete(self, request: web.Request) -> web.Response:
        """The object first: if that fails the record stays, and deleting again retries it."""
        owner = self.principal(request).sub
        media_id = request.match_info["id"]
        row = await self.media.row(media_id, owner)
        if row is not None:
            await self.store.delete(row["object_key"])
            async with self.database.transaction() as tx:
                await self.media.repository.delete_where({"id": media_id, "owner": owner}, tx=tx)
                after_commit = await self.avatars.forget(tx, owner, media_id)
            await self.media.written(media_id, owner)
            if after_commit is not None:
                await after_commit()
        return web.Response(status=204)


def add_routes(ctx, api: MediaApi) -> None:
    tags = ("media",)
    ctx.route("POST", "/v1/media", api.create, "Create a pending media record and a presigned upload for it",
              body=CreateMediaSchema, tags=tags, limit_class="media",
              responses={201: CreatedMediaSchema, 415: "The body is not application/json",
                         422: "A purpose, content type or size this gateway does not accept"})
    ctx.route("POST", "/v1/media/{id}/complete", api.complete,
              "Check the uploaded object (exists, type, size) and mark the media ready", tags=tags,
              responses={200: MediaSchema, 404: "No such media of yours",
                         409: "The object is missing or does not match; the media stays pending"})
    ctx.route("GET", "/v1/media/{id}", api.get, "One of the caller's media, with a download URL once ready",
              tags=tags, responses={200: MediaSchema, 404: "No such media of yours"})
    ctx.route("GET", "/v1/media", api.list, "The caller's media, newest first", query=ListQuery, tags=tags,
              responses={200: MediaPageSchema})
    ctx.route("DELETE", "/v1/media/{id}", api.delete,
              "Delete the object, then the record (and the profile's avatar if it was this)", tags=tags,
              responses={204: "Deleted, or there was no such media of yours"})
