"""The media flow on the production engines: MariaDB, memcached and S3 (moto), with the avatar
going into the cached profile and out of it again when its media is deleted."""
from __future__ import annotations

import pytest

from plugins.data.api import CACHE

from tests.media.helpers import JPEG, download


@pytest.fixture
async def app(start_app, s3_env, mysql_database, memcached_server):
    return await start_app({**s3_env, "DATABASE_URL": mysql_database,
                            "CACHE_URL": f"memcached://{memcached_server.address}"})


async def test_upload_avatar_cached_profile_and_delete(app, caller):
    auth, sub = caller()
    avatar = await app.ready(auth, "avatar")
    attachment = await app.ready(auth, "attachment")
    fetched = await (await app.client.get(f"/v1/media/{attachment['id']}", headers=auth)).json()
    assert (await download(fetched["url"]))[:2] == (200, JPEG)

    page = await (await app.client.get("/v1/media", params={"limit": 1}, headers=auth)).json()
    assert [item["id"] for item in page["items"]] == [attachment["id"]]
    page = await (await app.client.get("/v1/media", params={"limit": 1, "cursor": page["next_cursor"]},
                                       headers=auth)).json()
    assert [item["id"] for item in page["items"]] == [avatar["id"]] and page["next_cursor"] is None

    patched = await app.client.patch("/v1/me", json={"avatar_media_id": avatar["id"]}, headers=auth)
    assert patched.status == 200
    await app.client.get("/v1/me", headers=auth)  # fills memcached
    hits = app.services[CACHE].hits
    cached = await app.client.get("/v1/me", headers=auth)
    assert app.services[CACHE].hits > hits
    url = (await cached.json())["avatar"]["url"]
    assert (await download(url))[:2] == (200, JPEG)

    assert (await app.client.delete(f"/v1/media/{avatar['id']}", headers=auth)).status == 204
    assert (await (await app.client.get("/v1/me", headers=auth)).json())["avatar"] is None
    assert (await download(url))[0] in (403, 404)
