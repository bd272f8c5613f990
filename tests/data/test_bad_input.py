"""Bad input is a 4xx, never a 500 (issue 17, item 4): lone surrogates in bodies (422 naming the
field), hostile cursors, duplicate JSON keys (400), display names that show nothing or reorder
text (422). On MariaDB, where a lone surrogate cannot even be encoded for the query."""
from __future__ import annotations

import base64
import json

import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
async def app(start_app):
    return await start_app()


async def patch_raw(app, auth, raw: str):
    return await app.client.patch("/v1/me", data=raw.encode(), headers={**auth, "Content-Type": "application/json"})


@pytest.mark.parametrize("raw, field", [
    ('{"display_name": "a\\ud800b"}', "display_name"),
    ('{"bio": "\\udfff"}', "bio"),
    ('{"bio": "fine", "locale": "\\ud83d"}', "locale"),
    ('{"avatar_media_id": "m\\udc00"}', "avatar_media_id"),
])
async def test_a_lone_surrogate_is_422_naming_the_field(app, user, raw, field):
    _, auth = user
    before = await (await app.client.get("/v1/me", headers=auth)).read()
    response = await patch_raw(app, auth, raw)
    assert response.status == 422 and response.content_type == PROBLEM
    assert set((await response.json(content_type=PROBLEM))["errors"]) == {field}
    assert await (await app.client.get("/v1/me", headers=auth)).read() == before


async def test_a_surrogate_pair_is_a_character_like_any_other(app, user):
    _, auth = user
    response = await patch_raw(app, auth, '{"display_name": "smile \\ud83d\\ude00"}')
    assert response.status == 200 and (await response.json())["display_name"] == "smile \U0001F600"


@pytest.mark.parametrize("raw", ['{"bio": "a", "bio": "b"}', '{"display_name": "x", "bio": {"k": 1, "k": 2}}'])
async def test_duplicate_keys_are_400(app, user, raw):
    _, auth = user
    response = await patch_raw(app, auth, raw)
    assert response.status == 400 and response.content_type == PROBLEM


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("cursor", [
    cursor_of("[" * 3000), cursor_of("{" * 3000), cursor_of('["2026-01-01T00:00:00.000Z", "\\ud800"]'),
    "[" * 2000, cursor_of(json.dumps(["x" * 300, "y"])),
])
async def test_hostile_cursors_are_refused(app, user, cursor):
    _, auth = user
    response = await app.client.get("/v1/media", params={"cursor": cursor}, headers=auth)
    assert response.status == 422 and response.content_type == PROBLEM
    assert set((await response.json(content_type=PROBLEM))["errors"]) == {"cursor"}


@pytest.mark.parametrize("name", [
    "\u200b", "\u200b\u200c\u200d\u2060", "\ufeff", " \u200e ", "\u00ad",  # nothing visible
    "abc\u202egnp.exe", "\u202aname", "x\u2066y\u2069", "\u202dover",  # bidi overrides, embeddings, isolates
])
async def test_display_names_that_show_nothing_or_reorder_text_are_422(app, user, name):
    _, auth = user
    response = await app.client.patch("/v1/me", json={"display_name": name}, headers=auth)
    assert response.status == 422 and set((await response.json(content_type=PROBLEM))["errors"]) == {"display_name"}


@pytest.mark.parametrize("name", ["Zoë", "👩\u200d💻 dev", "محمد", "李小龍"])
async def test_names_with_joiners_and_right_to_left_scripts_are_fine(app, user, name):
    _, auth = user
    response = await app.client.patch("/v1/me", json={"display_name": name}, headers=auth)
    assert response.status == 200 and (await response.json())["display_name"] == name


async def test_a_token_name_that_shows_nothing_gives_the_fallback_display_name(app, issuer):
    auth = {"Authorization": f"Bearer {issuer.mint('invisible-' + 'a' * 8, username=chr(0x200b) * 3)}"}
    profile = await (await app.client.get("/v1/me", headers=auth)).json()
    assert profile["display_name"] == "user"
