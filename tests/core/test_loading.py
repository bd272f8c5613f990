"""A body loaded without marshmallow's machinery (gateway/routing.py `loader`) is exactly what
marshmallow loads, and every body the shortcut cannot take is marshmallow's, errors and all."""
from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError, fields, post_load, pre_load, validate, validates

from gateway.routing import loader
from plugins.media.routes import CreateMediaSchema
from plugins.profiles.routes import ProfilePatch


def outcome(load, payload):
    try:
        data = load(payload)
    except ValidationError as exc:
        return "refused", exc.messages
    return "loaded", data, list(data)  # member order too


PROFILE_BODIES = [
    {}, {"display_name": "Zoë"}, {"bio": "line\nbreak", "display_name": "x"}, {"locale": "en-GB"},
    {"locale": None}, {"display_name": ""}, {"display_name": "a" * 51}, {"display_name": 5},
    {"display_name": None}, {"display_name": "\u202egnp"}, {"display_name": "\u200b"},
    {"bio": "bell\a"}, {"locale": "not a tag"}, {"nickname": "x"}, {"display_name": "ok", "extra": 1},
    {"display_name": ["x"]}, {"display_name": True},
]
MEDIA_BODIES = [
    {"purpose": "avatar", "content_type": "image/jpeg", "size": 10},
    {"purpose": "avatar", "content_type": "image/jpeg"}, {"purpose": "pet", "content_type": "image/jpeg", "size": 10},
    {"purpose": "avatar", "content_type": "image/jpeg", "size": 0},
    {"purpose": "avatar", "content_type": "image/jpeg", "size": "10"},
    {"purpose": "avatar", "content_type": "image/jpeg", "size": 10.0},
    {"purpose": "avatar", "content_type": "image/jpeg", "size": True},
    {"purpose": "avatar", "content_type": "", "size": 10},
    {"purpose": "avatar", "content_type": "image/jpeg", "size": 10, "owner": "someone-else"},
]


@pytest.mark.parametrize("schema, payload", [(ProfilePatch(), body) for body in PROFILE_BODIES]
                         + [(CreateMediaSchema(), body) for body in MEDIA_BODIES])
def test_the_shortcut_loads_and_refuses_exactly_as_marshmallow(schema, payload):
    load = loader(schema)
    assert load != schema.load  # these schemas take the shortcut
    assert outcome(load, payload) == outcome(schema.load, payload)


def test_a_valid_body_is_loaded_without_marshmallow(monkeypatch):
    schema = CreateMediaSchema()
    load = loader(schema)
    monkeypatch.setattr(schema, "load", None)  # the shortcut must not need it
    assert load({"size": 3, "content_type": "image/png", "purpose": "avatar"}) == {
        "purpose": "avatar", "content_type": "image/png", "size": 3}


class Hooked(Schema):
    name = fields.Str()

    @pre_load
    def strip(self, data, **kwargs):
        return {key: value.strip() for key, value in data.items()}


class Checked(Schema):
    name = fields.Str()

    @validates("name")
    def not_root(self, value, **kwargs):
        if value == "root":
            raise ValidationError("No.")


class Made(Schema):
    name = fields.Str()

    @post_load
    def make(self, data, **kwargs):
        return tuple(data.items())


@pytest.mark.parametrize("schema", [
    Hooked(), Checked(), Made(),
    type("Renamed", (Schema,), {"name": fields.Str(data_key="title")})(),
    type("Stored", (Schema,), {"name": fields.Str(attribute="other")})(),
    type("Dated", (Schema,), {"when": fields.DateTime()})(),
    type("Flag", (Schema,), {"on": fields.Bool()})(),
    type("Email", (Schema,), {"to": fields.Email()})(),  # a String subclass: it validates more
    type("Listed", (Schema,), {"names": fields.List(fields.Str(validate=validate.Length(1)))})(),
    type("Many", (Schema,), {"name": fields.Str()})(many=True),
    type("Partial", (Schema,), {"name": fields.Str(required=True)})(partial=True),
    type("Lenient", (Schema,), {"name": fields.Str()})(unknown="exclude"),
])
def test_schemas_the_shortcut_cannot_take_are_marshmallows(schema):
    assert loader(schema) == schema.load


def test_a_missing_member_with_a_default_is_marshmallows_to_fill():
    schema = type("Paged", (Schema,), {"limit": fields.Int(load_default=50), "cursor": fields.Str()})()
    load = loader(schema)
    assert load({"cursor": "c"}) == {"cursor": "c", "limit": 50}
    assert load({"cursor": "c", "limit": 5}) == {"limit": 5, "cursor": "c"}
