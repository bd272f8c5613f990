"""The sync API (docs/clients.md has the client's side):

    GET    /v1/datasets                      the caller's datasets; ETag, 304 from the cache
    GET    /v1/datasets/{name}/records       changes since ?since= (tombstones included), paged
    PATCH  /v1/datasets/{name}/records       a batch of changes, all or nothing; 409 with the
                                             server's records for the keys changed meanwhile
    DELETE /v1/datasets/{name}               the dataset and its records

A dataset is created by its first push. Limits (plugins/sync/settings.py) are refused with 422
naming the field, before anything is stored.
"""
from __future__ import annotations

import logging

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gateway.plugin import SetupContext
from gateway.problems import PROBLEM_JSON, ValidationProblem
from plugins.auth.api import PrincipalOf
from plugins.data.api import ListQuery, Resource, encode_cursor, not_found
from plugins.sync.api import ChangeHook, DatasetChanged
from plugins.sync.store import NAME_MAX, Conflict, Refused, Store, record

log = logging.getLogger("gateway.sync")
NAME = validate.Regexp(rf"[A-Za-z0-9_.:-]{{1,{NAME_MAX}}}\Z",
                       error=f"1 to {NAME_MAX} of the characters A-Z a-z 0-9 _ . : -")


class DatasetSchema(Schema):
    name = fields.Str(required=True)
    sync_count = fields.Int(required=True)
    records = fields.Int(required=True, metadata={"description": "live records (tombstones not counted)"})
    bytes = fields.Int(required=True, metadata={"description": "UTF-8 bytes of the live records' keys and values"})
    created_at = fields.Str(required=True)
    last_modified = fields.Str(required=True)


class DatasetListSchema(Schema):
    """The caller's datasets, by name"""

    datasets = fields.List(fields.Nested(DatasetSchema), required=True)


class RecordSchema(Schema):
    key = fields.Str(required=True)
    value = fields.Str(required=True, allow_none=True, metadata={"description": "null in a tombstone"})
    sync_count = fields.Int(required=True)
    last_modified = fields.Str(required=True, allow_none=True, metadata={"description": "null in a 409 for a key the "
                                                                                      "server never had"})
    deleted = fields.Bool(required=True)


class ChangesSchema(Schema):
    """A page of changes since a sync count"""

    name = fields.Str(required=True)
    sync_count = fields.Int(required=True, metadata={
        "description": "the dataset's sync count, read before the records: on the last page, the `since` of the "
                       "next pull"})
    created_at = fields.Str(required=True, metadata={"description": "changes when the dataset was deleted and "
                                                                     "made again: then pull from 0"})
    records = fields.List(fields.Nested(RecordSchema), required=True)
    next_cursor = fields.Str(required=True, allow_none=True)


class PushedSchema(Schema):
    """The dataset's new sync count and the records as written"""

    name = fields.Str(required=True)
    sync_count = fields.Int(required=True)
    records = fields.List(fields.Nested(RecordSchema), required=True)


class PullQuery(ListQuery):
    since = fields.Int(load_default=0, validate=validate.Range(min=0))


def push_schema(settings) -> type[Schema]:
    """The PATCH body, with the configured key length and batch size."""

    class Change(Schema):
        key = fields.Str(required=True, validate=validate.Length(1, settings.max_key_length))
        value = fields.Str(required=True, allow_none=True, metadata={"description": "null deletes the record"})
        sync_count = fields.Int(required=True, strict=True, validate=validate.Range(min=0), metadata={
            "description": "the record's sync count this device last saw; 0 for a record it never saw"})

    class PushSchema(Schema):
        """Record changes, applied together or not at all"""

        changes = fields.List(fields.Nested(Change), required=True,
                              validate=validate.Length(1, settings.max_records))

        @validates_schema
        def distinct_keys(self, data: dict, **_: object) -> None:
            keys = [change["key"] for change in data.get("changes", ())]
            if len(set(keys)) != len(keys):
                raise ValidationError("Each key at most once per push.", "changes")

    return PushSchema


def dataset_name(request: web.Request) -> str:
    name = request.match_info["name"]
    try:
        NAME(name)
    except ValidationError as exc:
        raise ValidationProblem({"name": exc.messages}) from None
    return name


def conflict(rows: list) -> web.Response:
    """409 problem+json with the server's current records for the conflicting keys, to merge."""
    return web.json_response({
        "type": "about:blank", "title": "Conflict", "status": 409,
        "detail": "Records changed since the sync counts given; nothing was stored. Merge these and push again.",
        "records": [record(row) for row in rows],
    }, status=409, content_type=PROBLEM_JSON)


class SyncApi:
    """The handlers, and the SYNC service (its change hooks)."""

    def __init__(self, store: Store, owners: Resource, principal: PrincipalOf) -> None:
        self.store = store
        self.owners = owners
        self.principal = principal
        self.hooks: list[ChangeHook] = []

    def on_change(self, hook: ChangeHook) -> None:
        self.hooks.append(hook)

    async def changed(self, change: DatasetChanged) -> None:
        """After a commit: drop the cached dataset list, then tell the subscribers."""
        await self.owners.written(change.owner)
        for hook in self.hooks:
            try:
                await hook(change)
            except Exception:
                log.exception("a sync change hook failed")

    async def list(self, request: web.Request) -> web.Response:
        owner = self.principal(request).sub
        return await self.owners.get(request, owner, create=lambda: {"id": owner})

    async def pull(self, request: web.Request, query: dict) -> web.Response:
        owner, name = self.principal(request).sub, dataset_name(request)
        dataset = await self.store.dataset(owner, name)
        if dataset is None:
            raise not_found("dataset")
        after = None
        if query["cursor"] is not None:
            count, key = query["cursor"]
            if not count.isdigit():
                raise ValidationProblem({"cursor": ["Not a cursor this API returned."]})
            after = (int(count), key)
        rows = await self.store.changes(owner, name, query["since"], after, query["limit"])
        page = rows[:query["limit"]]
        more = len(rows) > query["limit"]
        return web.json_response({
            "name": name, "sync_count": dataset["sync_count"], "created_at": dataset["created_at"],
            "records": [record(row) for row in page],
            "next_cursor": encode_cursor(str(page[-1]["sync_count"]), page[-1]["key_hash"]) if more else None,
        })

    async def push(self, request: web.Request, body: dict) -> web.Response:
        owner, name = self.principal(request).sub, dataset_name(request)
        try:
            sync_count, written = await self.store.push(owner, name, body["changes"])
        except Conflict as exc:
            return conflict(exc.records)
        except Refused as exc:
            raise ValidationProblem({exc.field: [exc.message]}, "The push breaks a limit; nothing was stored.") from None
        await self.changed(DatasetChanged(owner, name, sync_count, tuple(row["record_key"] for row in written)))
        return web.json_response({"name": name, "sync_count": sync_count, "records": [record(row) for row in written]})

    async def delete(self, request: web.Request) -> web.Response:
        owner, name = self.principal(request).sub, dataset_name(request)
        if await self.store.delete(owner, name):
            await self.changed(DatasetChanged(owner, name, 0, (), deleted=True))
        return web.Response(status=204)

    async def forget(self, owner: str) -> dict[str, int]:
        """Account deletion (an ACCOUNTS hook, safe to run again): the caller's datasets go in one
        transaction; the cache and the subscribers hear of it after the commit."""
        async with self.store.database.transaction() as tx:
            names = await self.store.delete_owner(tx, owner)
        await self.owners.written(owner)
        for name in names:
            await self.changed(DatasetChanged(owner, name, 0, (), deleted=True))
        return {"datasets": len(names)}


def add_routes(ctx: SetupContext, api: SyncApi, push: type[Schema]) -> None:
    tags = ("sync",)
    ctx.route("GET", "/v1/datasets", api.list, "The caller's datasets (poll with If-None-Match: 304 when unchanged)",
              responses={200: DatasetListSchema, 304: "Not modified (If-None-Match)"}, tags=tags)
    ctx.route("GET", "/v1/datasets/{name}/records", api.pull,
              "Record changes since a sync count, tombstones included, oldest change first",
              query=PullQuery, responses={200: ChangesSchema, 404: "No such dataset", 422: "Bad name or query"},
              tags=tags)
    ctx.route("PATCH", "/v1/datasets/{name}/records", api.push,
              "Push record changes, each with the sync count the device last saw: all applied, or none",
              body=push, tags=tags,
              responses={200: PushedSchema, 409: "Records changed meanwhile: the server's records for those keys",
                         415: "The body is not application/json",
                         422: "Invalid fields, or a limit (datasets, records, bytes) would be broken"})
    ctx.route("DELETE", "/v1/datasets/{name}", api.delete, "Delete a dataset and its records",
              responses={204: "Deleted (or there was none)"}, tags=tags)
