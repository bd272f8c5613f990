"""A resource defined by another plugin in a few lines, as the media plugin does: the test of the
resource layer's owner rule, cursor pages and replica reads."""
from __future__ import annotations

import uuid
from pathlib import Path

from aiohttp import web
from marshmallow import Schema, fields, validate

from gateway.plugin import Plugin
from gateway.routing import BODY
from plugins.data.resources import ListQuery


class NoteSchema(Schema):
    id = fields.Str()
    body = fields.Str()
    created_at = fields.Str()
    version = fields.Int()


class NoteBody(Schema):
    body = fields.Str(required=True, validate=validate.Length(1, 100))


def setup(ctx):
    principal = ctx.require("principal")
    ctx.require("database").migrations.add("notes", Path(__file__).parent / "notes_migrations")
    notes = ctx.require("resources").define("note", table="notes", schema=NoteSchema, owner="owner_id")

    async def create(request):
        row = await notes.insert({"id": uuid.uuid4().hex, "owner_id": principal(request).sub,
                                  "body": request[BODY]["body"]})
        return web.json_response(await notes.data(row), status=201)

    async def get(request):
        return await notes.get(request, request.match_info["id"], owner=principal(request).sub)

    async def patch(request):
        return await notes.patch(request, request.match_info["id"], owner=principal(request).sub)

    async def delete(request):
        return await notes.delete(request, request.match_info["id"], owner=principal(request).sub)

    async def page(request):
        return await notes.list(request, owner=principal(request).sub)

    ctx.route("POST", "/v1/notes", create, "Add a note", body=NoteBody)
    ctx.route("GET", "/v1/notes", page, "The caller's notes, newest first", query=ListQuery)
    ctx.route("GET", "/v1/notes/{id}", get, "A note")
    ctx.route("PATCH", "/v1/notes/{id}", patch, "Change a note", body=NoteBody)
    ctx.route("DELETE", "/v1/notes/{id}", delete, "Delete a note")


plugin = Plugin(name="notes", setup=setup, requires=("principal", "database", "resources"))
