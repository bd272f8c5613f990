"""A private mariadbd killed and restarted under a stream of writes: 503s (never 500s) while it is
down, service again within seconds of its return, and every acknowledged write still there."""
from __future__ import annotations

import asyncio
import time

import pymysql
import pytest

from devsupport import servers
from tests.data.conftest import eventually


@pytest.fixture
def mariadb():
    server = servers.PrivateMariaDB()
    server.start()
    server.create_database("gw")
    yield server
    server.cleanup()


async def test_a_restarted_database_recovers_within_seconds_and_loses_nothing_acknowledged(start_app, user, mariadb):
    sub, auth = user
    app = await start_app(DATABASE_URL=f"mysql://root@127.0.0.1:{mariadb.port}/gw", CACHE_URL="memory://",
                          DATABASE_CONNECT_TIMEOUT_SECONDS="0.5", DATABASE_QUERY_TIMEOUT_SECONDS="2",
                          HEALTH_READY_CACHE_SECONDS="0")
    acknowledged: list[int] = []
    statuses: set[int] = set()
    stop = asyncio.Event()

    async def writer():
        n = 0
        while not stop.is_set():
            n += 1
            response = await app.client.patch("/v1/me", json={"bio": str(n)}, headers=auth)
            statuses.add(response.status)
            if response.status == 200:
                acknowledged.append(n)

    writing = asyncio.create_task(writer())
    await eventually(lambda: len(acknowledged) >= 5, what="writes before the crash")
    await asyncio.to_thread(mariadb.stop)  # SIGKILL
    down_since = len(acknowledged)
    await eventually(lambda: 503 in statuses, what="a 503 while the database is down")
    ready = await app.client.get("/health/ready")
    assert ready.status == 503 and (await ready.json())["checks"]["database"]["status"] == "fail"

    await asyncio.to_thread(mariadb.start)
    restarted = time.monotonic()
    await eventually(lambda: len(acknowledged) >= down_since + 5, timeout=10, what="writes after the restart")
    recovered_in = time.monotonic() - restarted
    stop.set()
    await writing

    assert statuses <= {200, 503} and recovered_in < 5
    response = await app.client.get("/v1/me", headers=auth)
    assert response.status == 200 and (await response.json())["bio"] == str(acknowledged[-1])
    check = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", password="", database="gw")
    with check.cursor() as cursor:
        cursor.execute("SELECT bio FROM profiles WHERE id = %s", (sub,))
        assert cursor.fetchone() == (str(acknowledged[-1]),)
    check.close()
