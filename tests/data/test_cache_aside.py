"""Cache-aside through the profile API, with real memcached and MariaDB: one database read for a
stampede across two instances, the stale-set race, read-your-writes against a lagging replica, and
memcached dying and coming back."""
from __future__ import annotations

import asyncio

from devsupport import servers
from tests.data.conftest import eventually


async def test_200_concurrent_cold_gets_across_two_instances_read_the_database_once(start_app, user):
    sub, auth = user
    first, second = await start_app(), await start_app()
    assert (await first.client.get("/v1/me", headers=auth)).status == 200
    await first.profiles.written(sub)  # cold again
    before = first.profiles.reads + second.profiles.reads

    responses = await asyncio.gather(*(app.client.get("/v1/me", headers=auth)
                                       for _ in range(100) for app in (first, second)))
    assert {r.status for r in responses} == {200}
    assert len({await r.read() for r in responses}) == 1
    assert first.profiles.reads + second.profiles.reads - before == 1
    assert first.cache.fills + second.cache.fills >= 1


async def test_a_fill_that_read_before_a_write_cannot_land_after_it(start_app, user):
    sub, auth = user
    reader, writer = await start_app(), await start_app()
    await reader.client.patch("/v1/me", json={"display_name": "old"}, headers=auth)
    await reader.profiles.written(sub)

    # the reader's load pauses between its database read and its fill, until released
    read_done, release = asyncio.Event(), asyncio.Event()
    real_row = reader.profiles.row

    async def row_then_pause(key, owner=None):
        row = await real_row(key, owner)
        if not read_done.is_set():
            read_done.set()
            await release.wait()
        return row

    reader.profiles.row = row_then_pause
    slow = asyncio.create_task(reader.client.get("/v1/me", headers=auth))
    await asyncio.wait_for(read_done.wait(), 5)
    patched = await writer.client.patch("/v1/me", json={"display_name": "new"}, headers=auth)
    assert patched.status == 200
    # asked after the write returned, while the old load is still in flight in the same process
    later = asyncio.create_task(reader.client.get("/v1/me", headers=auth))
    await eventually(lambda: reader.cache.misses >= 2, what="the later GET reached the flight")
    release.set()

    assert (await (await slow).json())["display_name"] == "old"  # the race really was forced
    assert (await (await later).json())["display_name"] == "new"  # read-your-writes
    current = await reader.client.get("/v1/me", headers=auth)
    assert (await current.json())["display_name"] == "new"
    stored = await reader.cache.backend.get(reader.cache.key("profile", "default", sub))
    assert stored == current.headers["ETag"].encode() + b"\n" + await current.read()


async def test_reads_after_a_write_see_it_even_with_a_lagging_read_replica(start_app, user, admin, scratch_database):
    sub, auth = user
    app = await start_app(DATABASE_READ_URL=scratch_database)
    await app.client.patch("/v1/me", json={"bio": "before"}, headers=auth)
    replica = scratch_database.rsplit("/", 1)[1]
    with admin.cursor() as cursor:  # a replica frozen now: it never sees the write below
        cursor.execute(f"CREATE TABLE `{replica}`.profiles LIKE profiles")
        cursor.execute(f"INSERT INTO `{replica}`.profiles SELECT * FROM profiles WHERE id = %s", (sub,))
    await app.client.patch("/v1/me", json={"bio": "after"}, headers=auth)
    assert (await (await app.client.get("/v1/me", headers=auth)).json())["bio"] == "after"
    assert (await (await app.client.get(f"/v1/users/{sub}", headers=auth)).json())["bio"] == "after"
    ready = await (await app.client.get("/health/ready")).json()
    assert ready["checks"]["database"]["replica"] is True


async def test_memcached_dying_is_answered_from_the_database_and_its_return_is_used_again(start_app, user):
    _, auth = user
    memcached = servers.memcached().start()
    try:
        app = await start_app(CACHE_URL=f"memcached://{memcached.address}", HEALTH_READY_CACHE_SECONDS="0")
        expected = await (await app.client.get("/v1/me", headers=auth)).read()
        assert await (await app.client.get("/v1/me", headers=auth)).read() == expected
        assert app.cache.hits == 1

        memcached.stop()
        for response in await asyncio.gather(*(app.client.get("/v1/me", headers=auth) for _ in range(20))):
            assert response.status == 200 and await response.read() == expected
        patched = await app.client.patch("/v1/me", json={"bio": "written while memcached was down"}, headers=auth)
        assert patched.status == 200
        for _ in range(10):
            response = await app.client.get("/v1/me", headers=auth)
            assert response.status == 200 and await response.read() == await patched.read()
        ready = await app.client.get("/health/ready")
        body = await ready.json()
        assert ready.status == 200 and body["status"] == "degraded"
        assert body["checks"]["cache"]["status"] == "fail" and body["checks"]["database"]["status"] == "ok"
        assert app.cache.errors > 0 and app.cache.breaker.state == "open"

        memcached.start()

        async def ready_again():
            return (await (await app.client.get("/health/ready")).json())["status"] == "ok"

        await eventually(ready_again, timeout=20, what="readiness ok again")

        async def cached_again():
            hits = app.cache.hits
            response = await app.client.get("/v1/me", headers=auth)
            assert response.status == 200 and await response.read() == await patched.read()
            return app.cache.hits > hits

        await eventually(cached_again, timeout=10, what="cache hits again")
    finally:
        memcached.stop()
