"""Per-user quotas (MEDIA_QUOTA_*): uploads in progress, uploads per hour, stored bytes; counted in
a transaction on the owner's locked row, so that concurrent creations never overshoot (on MariaDB,
whose row locks do it, and on SQLite, whose write transactions do)."""
from __future__ import annotations

import asyncio

import pytest

from plugins.data.api import DATABASE
from tests.media.helpers import JPEG

PROBLEM = "application/problem+json"
BODY = {"purpose": "attachment", "content_type": "image/jpeg", "size": len(JPEG)}


@pytest.fixture
def mariadb_env(media_env, mysql_database, memcached_server) -> dict:
    return {**media_env, "DATABASE_URL": mysql_database, "CACHE_URL": f"memcached://{memcached_server.address}"}


async def create_many(app, auth, count: int) -> list:
    responses = await asyncio.gather(*(app.client.post("/v1/media", json=BODY, headers=auth) for _ in range(count)))
    return [(response.status, response.headers.get("Retry-After"), await response.json()) for response in responses]


@pytest.mark.parametrize("quota, refused", [
    ({"MEDIA_QUOTA_PENDING": "10"}, 429),
    ({"MEDIA_QUOTA_UPLOADS_PER_HOUR": "10"}, 429),
    ({"MEDIA_QUOTA_BYTES": str(10 * len(JPEG))}, 409),
])
async def test_fifty_parallel_creations_at_a_quota_of_ten_give_exactly_ten(start_app, mariadb_env, caller, quota,
                                                                           refused):
    app = await start_app({**mariadb_env, **quota})
    auth, _ = caller()
    other, _ = caller()
    results = await create_many(app, auth, 50)
    assert sorted(status for status, _, _ in results) == [201] * 10 + [refused] * 40
    assert len((await (await app.client.get("/v1/media", params={"limit": 100}, headers=auth)).json())["items"]) == 10
    assert (await app.client.post("/v1/media", json=BODY, headers=other)).status == 201  # per user


async def test_the_hourly_quota_says_when_to_retry(start_app, media_env, caller):
    app = await start_app({**media_env, "MEDIA_QUOTA_UPLOADS_PER_HOUR": "2"})
    auth, _ = caller()
    created = [await app.create(auth, "attachment") for _ in range(2)]
    refused = await app.client.post("/v1/media", json=BODY, headers=auth)
    assert refused.status == 429 and refused.content_type == PROBLEM
    assert 3590 <= int(refused.headers["Retry-After"]) <= 3600
    assert "2 uploads an hour" in (await refused.json())["detail"]
    await app.client.delete(f"/v1/media/{created[0]['media']['id']}", headers=auth)
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 429  # deleting does not refill


async def test_uploads_in_progress_free_their_place_when_completed_or_deleted(start_app, media_env, caller):
    app = await start_app({**media_env, "MEDIA_QUOTA_PENDING": "1"})
    auth, _ = caller()
    await app.ready(auth, "attachment")  # created and completed: no longer in progress
    pending = await app.create(auth, "attachment")
    refused = await app.client.post("/v1/media", json=BODY, headers=auth)
    assert refused.status == 429 and "Retry-After" not in refused.headers
    assert "1 uploads in progress" in (await refused.json())["detail"]
    await app.client.delete(f"/v1/media/{pending['media']['id']}", headers=auth)
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 201


async def test_stored_bytes_count_pending_reservations_and_deleting_frees_them(start_app, media_env, caller):
    app = await start_app({**media_env, "MEDIA_QUOTA_BYTES": str(2 * len(JPEG))})
    auth, _ = caller()
    ready = await app.ready(auth, "attachment")
    await app.create(auth, "attachment")
    full = await app.client.post("/v1/media", json=BODY, headers=auth)
    assert full.status == 409 and full.content_type == PROBLEM and "Delete some media" in (await full.json())["detail"]
    too_large = await app.client.post("/v1/media", json={**BODY, "size": 2 * len(JPEG) + 1}, headers=auth)
    assert too_large.status == 413 and too_large.content_type == PROBLEM
    await app.client.delete(f"/v1/media/{ready['id']}", headers=auth)
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 201


async def test_an_account_deletion_takes_the_quota_row_with_it(start_app, media_env, caller):
    app = await start_app(media_env)
    auth, sub = caller()
    await app.create(auth, "attachment")
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert await app.services[DATABASE].fetch_one("SELECT owner FROM media_quotas WHERE owner = ?", (sub,)) is None
