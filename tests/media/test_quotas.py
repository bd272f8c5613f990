"""Per-user quotas (MEDIA_QUOTA_*): uploads in progress, uploads per hour, stored bytes; admitted and
counted by one conditional UPDATE of the owner's row, so that concurrent creations never overshoot
(on MariaDB, whose row locks do it, and on SQLite, whose write transactions do). The counters equal
what the media table says after every kind of change, counters too high are healed by the recount
of a refusal instead of refusing, and the migration that adds them counts the media already there."""
from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import pytest

from gateway.settings import load
from plugins.data import open_database
from plugins.data.api import DATABASE
from plugins.data.settings import DataSettings
from plugins.media.backends.local import LocalStore
from plugins.media.quotas import USAGE
from tests.conftest import temporary_database
from tests.media.helpers import JPEG, SAMPLES, cleanup

PROBLEM = "application/problem+json"
BODY = {"purpose": "attachment", "content_type": "image/jpeg", "size": len(JPEG)}


@pytest.fixture
def mariadb_env(media_env, mysql_database, memcached_server) -> dict:
    return {**media_env, "DATABASE_URL": mysql_database, "CACHE_URL": f"memcached://{memcached_server.address}"}


@pytest.fixture(params=["sqlite", "mariadb"])
def engine_env(request, media_env) -> dict:
    return media_env if request.param == "sqlite" else request.getfixturevalue("mariadb_env")


async def counted(app, owner: str) -> tuple[int, int]:
    """The owner's counters: (uploads in progress, stored bytes)."""
    row = await app.services[DATABASE].fetch_one(
        "SELECT pending_count, stored_bytes FROM media_quotas WHERE owner = ?", (owner,))
    return row["pending_count"], row["stored_bytes"]


async def recounted(app, owner: str) -> tuple[int, int]:
    """The same, counted from the media table."""
    usage = await app.services[DATABASE].fetch_one(USAGE, ("pending", owner))
    return usage["pending"], usage["stored"]


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


async def test_media_without_a_quota_row_are_counted_when_the_row_is_made(start_app, engine_env, caller):
    """As a creation that commits between an account deletion's erasing of the media and of the quota
    row leaves them (the token stays valid, so its owner may go on creating)."""
    app = await start_app(engine_env)
    auth, sub = caller()
    await app.create(auth, "attachment")
    await app.services[DATABASE].execute("DELETE FROM media_quotas WHERE owner = ?", (sub,))
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 201
    assert await counted(app, sub) == await recounted(app, sub) == (2, 2 * len(JPEG))


async def test_the_counters_follow_every_change_of_media(start_app, engine_env, caller):
    env = {**engine_env, "MEDIA_QUOTA_BYTES": str(4 * len(JPEG))}
    app = await start_app(env)
    auth, sub = caller()
    other, other_sub = caller()

    async def check(expected: tuple[int, int]) -> None:
        assert await counted(app, sub) == await recounted(app, sub) == expected

    pending, expiring = [(await app.create(auth, "attachment"))["media"]["id"] for _ in range(2)]
    first, second = [(await app.ready(auth, "attachment"))["id"] for _ in range(2)]
    await app.create(other, "attachment")
    await check((2, 4 * len(JPEG)))
    refused = await app.client.post("/v1/media", json=BODY, headers=auth)
    assert refused.status == 409
    await check((2, 4 * len(JPEG)))
    assert (await app.client.delete(f"/v1/media/{pending}", headers=auth)).status == 204
    await check((1, 3 * len(JPEG)))
    assert (await app.client.delete(f"/v1/media/{first}", headers=auth)).status == 204
    await check((1, 2 * len(JPEG)))
    await app.services[DATABASE].execute("UPDATE media SET created_at = ? WHERE id = ?",
                                         ("2000-01-01T00:00:00.000Z", expiring))
    await cleanup(env)
    await check((0, len(JPEG)))
    await app.ready(auth, "attachment")
    await check((0, 2 * len(JPEG)))
    assert (await app.client.delete(f"/v1/media/{second}", headers=auth)).status == 204
    await check((0, len(JPEG)))
    assert await counted(app, other_sub) == await recounted(app, other_sub) == (1, len(JPEG))


async def test_a_resumable_upload_whose_session_fails_to_start_gives_its_share_back(start_app, engine_env, caller,
                                                                                     monkeypatch):
    app = await start_app({**engine_env, "MEDIA_MULTIPART_THRESHOLD_BYTES": str(5 << 20)})
    auth, sub = caller()

    async def refuse(*_):
        raise OSError("the store is down")

    monkeypatch.setattr(LocalStore, "start_multipart", refuse)
    video = {"purpose": "attachment", "content_type": "video/mp4", "size": 6 << 20}
    assert (await app.client.post("/v1/media", json=video, headers=auth)).status == 500
    assert await counted(app, sub) == await recounted(app, sub) == (0, 0)


async def test_counters_too_high_are_recounted_and_do_not_refuse_an_upload_that_fits(start_app, engine_env, caller):
    app = await start_app({**engine_env, "MEDIA_QUOTA_PENDING": "2", "MEDIA_QUOTA_BYTES": str(3 * len(JPEG))})
    auth, sub = caller()
    await app.create(auth, "attachment")
    await app.services[DATABASE].execute("UPDATE media_quotas SET pending_count = 2, stored_bytes = ? WHERE owner = ?",
                                         (3 * len(JPEG), sub))
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 201
    assert await counted(app, sub) == await recounted(app, sub) == (2, 2 * len(JPEG))
    refused = await app.client.post("/v1/media", json=BODY, headers=auth)  # now the truth refuses
    assert refused.status == 429 and "2 uploads in progress" in (await refused.json())["detail"]

    await app.services[DATABASE].execute("UPDATE media_quotas SET pending_count = 7, stored_bytes = 7 WHERE owner = ?",
                                         (sub,))
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 429
    assert await counted(app, sub) == (2, 2 * len(JPEG))  # a refusal writes the truth back


async def test_media_cleanup_recounts_counters_too_low(start_app, engine_env, caller, capsys):
    """As a rolling deploy leaves them: instances without the counters create and delete uncounted."""
    app = await start_app({**engine_env, "MEDIA_QUOTA_PENDING": "2"})
    (auth, sub), (other, other_sub) = caller(), caller()
    for each in (auth, auth, other):
        await app.create(each, "attachment")
    await app.services[DATABASE].execute("UPDATE media_quotas SET pending_count = -1, stored_bytes = 0 WHERE owner = ?",
                                         (sub,))
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 201  # what cleanup puts right
    await cleanup(engine_env)
    recounts = re.search(r"(\d+) quotas recounted", capsys.readouterr().out)
    assert recounts and int(recounts[1]) >= 1  # MariaDB's database is the session's: others' may be among them
    assert await counted(app, sub) == await recounted(app, sub) == (3, 3 * len(JPEG))
    assert await counted(app, other_sub) == await recounted(app, other_sub) == (1, len(JPEG))
    assert (await app.client.post("/v1/media", json=BODY, headers=auth)).status == 429


async def test_an_hour_after_its_window_began_the_count_starts_again(start_app, engine_env, caller):
    """The UPDATE resets the window and counts in one statement; MySQL, which assigns left to right
    from the values already set, and SQLite, which assigns from the old row, agree."""
    app = await start_app({**engine_env, "MEDIA_QUOTA_UPLOADS_PER_HOUR": "2"})
    auth, sub = caller()
    await app.create(auth, "attachment")
    began = int(time.time()) - 3600
    await app.services[DATABASE].execute("UPDATE media_quotas SET window_start = ?, window_count = 2 WHERE owner = ?",
                                         (began, sub))
    await app.create(auth, "attachment")
    window = await app.services[DATABASE].fetch_one(
        "SELECT window_start, window_count FROM media_quotas WHERE owner = ?", (sub,))
    assert window["window_count"] == 1 and window["window_start"] >= began + 3600
    await app.create(auth, "attachment")
    refused = await app.client.post("/v1/media", json=BODY, headers=auth)
    assert refused.status == 429 and 3590 <= int(refused.headers["Retry-After"]) <= 3600


MIGRATIONS = Path(__file__).parent.parent.parent / "plugins"


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    """An empty database of its own."""
    if request.param == "mariadb":
        with temporary_database("gw_quota") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path}/quotas.db"


async def migrated(url: str, media_migrations: Path):
    database = open_database(load(DataSettings, {"GATEWAY_ENV": "test", "DATABASE_URL": url}))
    database.migrations.add("profiles", MIGRATIONS / "profiles" / "migrations")
    database.migrations.add("media", media_migrations)
    await database.start()
    await database.migrations.apply(database)
    return database


async def test_the_counters_migration_counts_the_media_already_there(database_url, tmp_path):
    before = tmp_path / "media-0004"
    before.mkdir()
    for path in (MIGRATIONS / "media" / "migrations").glob("000[1-4]_*.sql"):
        shutil.copy(path, before)
    database = await migrated(database_url, before)
    media = ("INSERT INTO media (id, owner, purpose, status, content_type, size, object_key, created_at, updated_at) "
             "VALUES (?, ?, 'attachment', ?, 'image/png', ?, ?, ?, ?)")
    try:
        async with database.transaction() as tx:
            for number, (owner, status, size) in enumerate([("alice", "pending", 10), ("alice", "pending", 20),
                                                            ("alice", "ready", 300), ("bob", "ready", 4000)]):
                stamp = f"2025-01-0{number + 1}T00:00:00.000Z"
                await tx.execute(media, (f"m{number}", owner, status, size, f"attachments/{owner}/m{number}.png",
                                         stamp, stamp))
            for owner, window_start in (("alice", 1700000000), ("carol", 1700000001)):  # carol: none left
                await tx.execute("INSERT INTO media_quotas (owner, window_start, window_count, created_at, updated_at)"
                                 " VALUES (?, ?, 3, '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')",
                                 (owner, window_start))
    finally:
        await database.close()

    database = await migrated(database_url, MIGRATIONS / "media" / "migrations")
    try:
        rows = await database.fetch_all("SELECT owner, window_start, window_count, pending_count, stored_bytes, "
                                        "created_at FROM media_quotas ORDER BY owner")
    finally:
        await database.close()
    assert rows == [
        {"owner": "alice", "window_start": 1700000000, "window_count": 3, "pending_count": 2, "stored_bytes": 330,
         "created_at": "2025-01-01T00:00:00.000Z"},
        {"owner": "bob", "window_start": 0, "window_count": 0, "pending_count": 0, "stored_bytes": 4000,
         "created_at": "2025-01-04T00:00:00.000Z"},  # media from before quotas: a row dated from its first
        {"owner": "carol", "window_start": 1700000001, "window_count": 3, "pending_count": 0, "stored_bytes": 0,
         "created_at": "2025-01-01T00:00:00.000Z"},
    ]
