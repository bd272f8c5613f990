"""A view's dump made as a copy of the row's values (plugins/data/representations.py) is exactly
marshmallow's dump, and marshmallow still dumps whatever a copy cannot render."""
from __future__ import annotations

import pytest
from marshmallow import Schema, fields, post_dump

from plugins.data.representations import copied, plain_fields
from plugins.media.routes import MediaSchema
from plugins.profiles.routes import Profile, PublicProfile

ROW = {"id": "u1", "username": "user1", "display_name": "Zoë", "bio": "", "locale": None,
       "created_at": "2026-11-30T10:00:00.000Z", "updated_at": "2026-11-30T10:00:01.000Z", "version": 3,
       "avatar_media_id": None}


@pytest.mark.parametrize("schema", [Profile(), PublicProfile()])
@pytest.mark.parametrize("row", [ROW, {**ROW, "locale": "en-GB"}, {key: ROW[key] for key in ("id", "bio", "version")}])
def test_the_copy_is_marshmallows_dump(schema, row):
    plain = plain_fields(schema, rendered=())
    assert plain is not None and copied(plain, row) == schema.dump(row)
    assert list(copied(plain, row)) == list(schema.dump(row))  # the same order of members


def test_rendered_fields_are_left_to_their_renderer_and_dump_only_fields_missing_from_the_row_are_omitted():
    media = {"id": "m1", "purpose": "avatar", "status": "ready", "content_type": "image/jpeg", "size": 5,
             "created_at": "2026-11-30T10:00:00.000Z", "owner": "u1"}
    plain = plain_fields(MediaSchema(), rendered=())
    assert copied(plain, media) == MediaSchema().dump(media)
    assert "purpose" not in plain_fields(MediaSchema(), rendered=("purpose",))


def test_a_value_of_another_type_goes_to_marshmallow():
    plain = plain_fields(Profile(), rendered=())
    assert copied(plain, {**ROW, "bio": 5}) is None  # marshmallow dumps "5"
    assert copied(plain, {**ROW, "version": True}) is None  # a bool is not an integer here


class Hooked(Schema):
    name = fields.Str()

    @post_dump
    def shout(self, data, **kwargs):
        return {**data, "name": data["name"].upper()}


@pytest.mark.parametrize("schema", [
    Hooked(),
    type("Renamed", (Schema,), {"name": fields.Str(data_key="title")})(),
    type("FromAnother", (Schema,), {"name": fields.Str(attribute="other")})(),
    type("Defaulted", (Schema,), {"name": fields.Str(dump_default="x")})(),
    type("AsText", (Schema,), {"count": fields.Int(as_string=True)})(),
    type("Dated", (Schema,), {"when": fields.DateTime()})(),
])
def test_views_a_copy_cannot_render_are_marshmallows(schema):
    assert plain_fields(schema, rendered=()) is None
