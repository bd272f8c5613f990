"""The media API of INTERFACE.md: POST /v1/media (a record and a presigned upload), POST
/v1/media/{id}/complete, GET /v1/media/{id} (with a download URL once ready), GET /v1/media (the
caller's, newest first) and DELETE /v1/media/{id}. Another user's media answers 404.

Above MEDIA_MULTIPART_THRESHOLD_BYTES the upload is resumable (an S3 multipart upload): POST
/v1/media answers the part size, the part count and the first part URLs; POST /v1/media/{id}/parts
gives URLs for more (or fresh ones), GET /v1/media/{id}/parts what has been received, POST
/v1/media/{id}/parts/complete assembles the parts the phone names by their ETags; DELETE aborts."""
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
from plugins.media.backends.store import Changed, incoming_key, object_key
from plugins.media.content import mismatch
from plugins.media.quotas import Quotas

PURPOSES = ("avatar", "attachment")
PART_URL_BATCH = 100  # part URLs in one answer


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


class PartUrlSchema(Schema):
    part_number = fields.Int(required=True)
    url = fields.Str(required=True)


class UploadSchema(Schema):
    """Either (method POST) post `fields` and then the file (as the last field, `file`) to `url` as
    multipart/form-data; or (method PUT, a resumable upload) PUT each part of `part_size` bytes
    (the last: the rest) to its URL in `urls`, keeping the ETag each answers"""

    method = fields.Str(required=True, metadata={"enum": ["POST", "PUT"]})
    expires_at = fields.Str(required=True)
    url = fields.Str()
    part_size = fields.Int()
    parts = fields.Int()
    urls = fields.List(fields.Nested(PartUrlSchema))
    fields = fields.Dict(keys=fields.Str(), values=fields.Str())  # last: it shadows the module


class PartNumbersSchema(Schema):
    """The parts to upload next (at most 100 a request)"""

    part_numbers = fields.List(fields.Int(strict=True), required=True, validate=validate.Length(1, PART_URL_BATCH))


class PartUrlsSchema(Schema):
    urls = fields.List(fields.Nested(PartUrlSchema), required=True)
    expires_at = fields.Str(required=True)


class ReceivedPartSchema(Schema):
    part_number = fields.Int(required=True)
    etag = fields.Str(required=True)
    size = fields.Int(required=True)


class ReceivedSchema(Schema):
    part_size = fields.Int(required=True)
    parts = fields.Int(required=True)
    received = fields.List(fields.Nested(ReceivedPartSchema), required=True)


class CompletedPartSchema(Schema):
    part_number = fields.Int(required=True, strict=True)
    etag = fields.Str(required=True, validate=validate.Length(1, 128))


class CompletePartsSchema(Schema):
    """Every part, 1 to `parts` in order, with the ETag its PUT answered"""

    parts = fields.List(fields.Nested(CompletedPartSchema), required=True, validate=validate.Length(1, 10000))


class CreatedMediaSchema(Schema):
    media = fields.Nested(MediaSchema, required=True)
    upload = fields.Nested(UploadSchema, required=True)


class MediaPageSchema(Schema):
    items = fields.List(fields.Nested(MediaSchema), required=True)
    next_cursor = fields.Str(allow_none=True, required=True)


def part_count(row: dict) -> int:
    return -(-row["size"] // row["part_size"])


def part_bytes(row: dict, number: int) -> int:
    """Every part is `part_size` bytes but the last, which is the rest."""
    count = part_count(row)
    return row["part_size"] if number < count else row["size"] - (count - 1) * row["part_size"]


@dataclass(frozen=True)
class Purpose:
    types: tuple[str, ...]
    max_bytes: int


class MediaApi:
    def __init__(self, media: Resource, store, avatars: Avatars, quotas: Quotas, database: Database,
                 principal: PrincipalOf, settings) -> None:
        self.media = media
        self.quotas = quotas
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

    async def _represent(self, row: dict) -> web.Response:
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
        resumable = body["size"] > self.settings.multipart_threshold
        values = {"id": media_id, "owner": owner, "status": "pending", "object_key": key, **body,
                  "part_size": self.settings.multipart_part_bytes if resumable else None}
        row = await self.quotas.reserve(owner, body["size"], lambda tx: self.media.repository.insert(values, tx=tx))
        if resumable:  # the session once the quotas allow it; cleanup spares a young one without its id recorded
            try:
                upload_id = await self.store.start_multipart(incoming_key(key), body["content_type"], body["size"],
                                                             row["part_size"])
            except Exception:
                async with self.database.transaction() as tx:
                    await self.media.repository.delete_where({"id": media_id, "owner": owner}, tx=tx)
                    await self.quotas.release(tx, row, deleted=True)
                raise
            await self.media.repository.update_where({"id": media_id, "owner": owner}, {"upload_id": upload_id})
            row = {**row, "upload_id": upload_id}
            count = part_count(row)
            upload = {"method": "PUT", "part_size": row["part_size"], "parts": count,
                      **await self._part_urls(row, range(1, min(count, PART_URL_BATCH) + 1))}
        else:
            expires = int(time.time()) + self.settings.upload_expiry
            url, form = await self.store.presign_upload(incoming_key(key), body["content_type"], body["size"], expires)
            upload = {"method": "POST", "url": url, "fields": form, "expires_at": utc_text(expires)}
        return web.json_response(
            {"media": await self.media.data(row), "upload": upload},
            status=201, headers={"Location": f"/v1/media/{media_id}", "Cache-Control": "no-store"},
        )

    async def _part_urls(self, row: dict, numbers) -> dict:
        expires = int(time.time()) + self.settings.upload_expiry
        key = incoming_key(row["object_key"])
        urls = [{"part_number": n, "url": await self.store.part_url(key, row["upload_id"], n, expires)}
                for n in numbers]
        return {"urls": urls, "expires_at": utc_text(expires)}

    async def _unassembled(self, row: dict) -> bool:
        """A resumable upload whose parts are not yet one object."""
        return (row["status"] == "pending" and bool(row["upload_id"])
                and await self.store.head(incoming_key(row["object_key"])) is None)

    async def _session(self, request: web.Request) -> tuple[str, dict]:
        owner, row = await self._own(request)
        if row["status"] != "pending" or not row["upload_id"]:
            raise Problem(409, "Conflict", "This media has no resumable upload in progress.")
        return owner, row

    async def part_urls(self, request: web.Request, body: dict) -> web.Response:
        _, row = await self._session(request)
        count = part_count(row)
        if outside := [n for n in body["part_numbers"] if not 1 <= n <= count]:
            raise ValidationProblem({"part_numbers": [f"Parts are numbered 1 to {count}, not {outside[0]}."]})
        return web.json_response(await self._part_urls(row, sorted(set(body["part_numbers"]))),
                                 headers={"Cache-Control": "no-store"})

    async def received(self, request: web.Request) -> web.Response:
        """What the store has received, so that a phone restarted after a crash resumes from there."""
        _, row = await self._session(request)
        parts = await self.store.parts(incoming_key(row["object_key"]), row["upload_id"]) or []
        received = [{"part_number": p.number, "etag": p.etag, "size": p.size} for p in parts]
        return web.json_response({"part_size": row["part_size"], "parts": part_count(row), "received": received},
                                 headers={"Cache-Control": "no-store"})

    async def complete_parts(self, request: web.Request, body: dict) -> web.Response:
        """Every part named with the ETag the store answered for it and of its exact size, then
        assembled and checked like any upload."""
        owner, row = await self._own(request)
        upload = incoming_key(row["object_key"])
        if await self._unassembled(row):
            count = part_count(row)
            named = [(part["part_number"], part["etag"].strip('"')) for part in body["parts"]]
            if [number for number, _ in named] != list(range(1, count + 1)):
                raise ValidationProblem({"parts": [f"List every part, 1 to {count}, in order."]})
            received = {p.number: p for p in await self.store.parts(upload, row["upload_id"]) or []}
            for number, etag in named:
                part = received.get(number)
                if part is None:
                    raise Problem(409, "Conflict", f"Part {number} has not been received: upload it, then complete.")
                if part.etag.strip('"') != etag:
                    raise Problem(409, "Conflict", f"Part {number}'s ETag is not the one the store answered for it.")
                if part.size != part_bytes(row, number):
                    raise Problem(409, "Conflict", f"Part {number} has {part.size} bytes, not "
                                  f"{part_bytes(row, number)}: upload it again, then complete.")
            try:
                await self.store.complete_multipart(upload, row["upload_id"], [(n, received[n].etag) for n, _ in named])
            except Changed:
                raise Problem(409, "Conflict", "The parts changed while they were checked: complete again.") from None
        return await self._complete(owner, row)

    async def complete(self, request: web.Request) -> web.Response:
        owner, row = await self._own(request)
        if await self._unassembled(row):
            raise Problem(409, "Conflict", "A resumable upload completes with POST /v1/media/{id}/parts/complete "
                          "and the parts' ETags.")
        return await self._complete(owner, row)

    async def _complete(self, owner: str, row: dict) -> web.Response:
        if row["status"] == "ready":
            return await self._represent(row)
        upload, key = incoming_key(row["object_key"]), row["object_key"]
        head = await self.store.head(upload)
        if head is None:
            raise Problem(409, "Conflict", "Nothing has been uploaded for this media yet.")
        if head.content_type != row["content_type"]:
            await self.refuse(row, f"The upload is {head.content_type}, not {row['content_type']}.")
        if head.size != row["size"]:
            await self.refuse(row, f"The upload has {head.size} bytes, not the {row['size']} declared.")
        try:
            if problem := mismatch(row["content_type"], await self.store.read_start(upload, head.etag)):
                await self.refuse(row, problem)
            await self.store.publish(upload, head.etag, key, row["content_type"], attachment=row["purpose"] != "avatar")
        except Changed:
            raise Problem(409, "Conflict", "The upload changed while it was checked: complete again.") from None
        async with self.database.transaction() as tx:
            completed = await self.media.repository.update_where({"id": row["id"], "owner": owner,
                                                                  "status": "pending"}, {"status": "ready"}, tx=tx)
            if completed:
                await self.quotas.release(tx, row, deleted=False)
        if not completed:
            if await self.media.row(row["id"], owner) is None:  # deleted meanwhile: what was published goes too
                await self.store.delete(key)
                raise not_found("media")
        await self.media.written(row["id"], owner)
        return await self._represent(await self.media.row(row["id"], owner))

    async def refuse(self, row: dict, detail: str) -> None:
        """An upload that is not what was declared goes; the media stays pending for another try
        (a resumable one with a new, empty session: GET its parts and request their URLs)."""
        upload = incoming_key(row["object_key"])
        await self.store.delete(upload)
        if row["upload_id"]:
            upload_id = await self.store.start_multipart(upload, row["content_type"], row["size"], row["part_size"])
            await self.media.repository.update_where({"id": row["id"], "status": "pending"}, {"upload_id": upload_id})
            await self.media.written(row["id"], row["owner"])
        raise Problem(409, "Conflict", f"{detail} The upload was removed: upload the declared file again.")

    async def get(self, request: web.Request) -> web.Response:
        _, row = await self._own(request)
        return await self._represent(row)

    async def list(self, request: web.Request, query: dict) -> web.Response:
        return await self.media.list(request, query, owner=self.principal(request).sub)

    async def delete(self, request: web.Request) -> web.Response:
        """The objects first (the published one and an upload): if that fails the record stays, and
        deleting again retries it. A complete that published between those two deletions left an
        object the record's deletion would orphan: the record's status tells, and it goes too."""
        owner = self.principal(request).sub
        media_id = request.match_info["id"]
        row = await self.media.row(media_id, owner)
        if row is not None:
            if row["upload_id"] and row["status"] == "pending":
                await self.store.abort_multipart(incoming_key(row["object_key"]), row["upload_id"])
            for key in (row["object_key"], incoming_key(row["object_key"])):
                await self.store.delete(key)
            async with self.database.transaction() as tx:
                if current := await self.media.repository.lock(tx, media_id, owner):  # its status now
                    await self.media.repository.delete_where({"id": media_id, "owner": owner}, tx=tx)
                    await self.quotas.release(tx, current, deleted=True)
                after_commit = await self.avatars.forget(tx, owner, media_id)
            if current is not None and current["status"] != row["status"]:
                await self.store.delete(row["object_key"])  # a complete published it meanwhile
            await self.media.written(media_id, owner)
            if after_commit is not None:
                await after_commit()
        return web.Response(status=204)


def add_routes(ctx, api: MediaApi) -> None:
    tags = ("media",)
    ctx.route("POST", "/v1/media", api.create, "Create a pending media record and a presigned upload for it",
              body=CreateMediaSchema, tags=tags, limit_class="media",
              responses={201: CreatedMediaSchema, 409: "The upload does not fit the caller's remaining storage",
                         413: "The upload is larger than the caller's whole storage quota",
                         415: "The body is not application/json",
                         422: "A purpose, content type or size this gateway does not accept",
                         429: "Too many uploads this hour (Retry-After) or in progress"})
    ctx.route("POST", "/v1/media/{id}/complete", api.complete,
              "Check the uploaded object (exists, exact type and size) and mark the media ready", tags=tags,
              responses={200: MediaSchema, 404: "No such media of yours",
                         409: "The object is missing, or does not match and was removed; the media stays pending"})
    ctx.route("POST", "/v1/media/{id}/parts", api.part_urls,
              "Presigned URLs for parts of a resumable upload (more of them, or fresh ones)", body=PartNumbersSchema,
              tags=tags, responses={200: PartUrlsSchema, 404: "No such media of yours",
                                    409: "No resumable upload in progress", 422: "A part number out of range"})
    ctx.route("GET", "/v1/media/{id}/parts", api.received, "The parts of a resumable upload received so far",
              tags=tags, responses={200: ReceivedSchema, 404: "No such media of yours",
                                    409: "No resumable upload in progress"})
    ctx.route("POST", "/v1/media/{id}/parts/complete", api.complete_parts,
              "Assemble a resumable upload from its parts (checked by ETag and size), check it and mark it ready",
              body=CompletePartsSchema, tags=tags,
              responses={200: MediaSchema, 404: "No such media of yours",
                         409: "A part is missing, has another ETag or size, or the object does not match",
                         422: "The parts are not 1 to their count, in order"})
    ctx.route("GET", "/v1/media/{id}", api.get, "One of the caller's media, with a download URL once ready",
              tags=tags, responses={200: MediaSchema, 404: "No such media of yours"})
    ctx.route("GET", "/v1/media", api.list, "The caller's media, newest first", query=ListQuery, tags=tags,
              responses={200: MediaPageSchema})
    ctx.route("DELETE", "/v1/media/{id}", api.delete,
              "Delete the object (or abort the resumable upload), then the record (and the profile's avatar if it "
              "was this)", tags=tags,
              responses={204: "Deleted, or there was no such media of yours"})
