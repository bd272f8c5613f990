"""The MySQL connection pool (plugins/data/pool.py) on the real MariaDB: which connection a turn
gets, which ones never go back, and closing."""
from __future__ import annotations

import asyncio

import pytest

from plugins.data.api import DatabaseUnavailable
from tests.data.conftest import eventually
from tests.data.test_storage import opened

CONNECTION = "SELECT CONNECTION_ID() AS id"


async def connection_id(database) -> int:
    """The id of the connection a turn gets; a session's statement is not retried, so a stale
    connection handed out would fail here."""
    async with database.session() as session:
        return (await session.fetch_one(CONNECTION))["id"]


def connected(admin, connection: int) -> bool:
    with admin.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s", (connection,))
        return cursor.fetchone() is not None


async def test_turns_one_after_another_share_one_connection_and_never_open_more_than_the_maximum(mysql_database):
    database = await opened(mysql_database, DATABASE_POOL_MAX="2")
    try:
        first = await connection_id(database)
        assert [await connection_id(database) for _ in range(3)] == [first] * 3
        rows = await asyncio.gather(*(database.fetch_one("SELECT SLEEP(0.05) AS s, CONNECTION_ID() AS id")
                                      for _ in range(6)))
        assert len({row["id"] for row in rows}) <= 2
        assert len(database._writer.idle) <= 2
    finally:
        await database.close()


async def test_an_idle_connection_the_server_closed_is_not_handed_out(mysql_database, admin):
    database = await opened(mysql_database)
    try:
        victim = await connection_id(database)
        with admin.cursor() as cursor:
            cursor.execute("KILL CONNECTION %s", (victim,))
        idle = database._writer.idle[-1]
        await eventually(lambda: idle._reader.at_eof() or idle._reader.eof_received, what="the client seeing the close")
        assert await connection_id(database) != victim
        assert idle.closed
    finally:
        await database.close()


async def test_a_connection_idle_past_the_recycle_time_is_closed_and_replaced(mysql_database, admin):
    database = await opened(mysql_database, DATABASE_POOL_RECYCLE_SECONDS="30")
    try:
        old = await connection_id(database)
        pool = database._writer
        now = pool.clock
        pool.clock = lambda: now() + 29  # not yet past it
        assert await connection_id(database) == old
        pool.clock = lambda: now() + 31
        assert await connection_id(database) != old
        await eventually(lambda: not connected(admin, old), what="the recycled connection gone from the server")
    finally:
        await database.close()


async def test_a_connection_given_back_inside_a_transaction_is_closed_not_reused(mysql_database, admin):
    database = await opened(mysql_database)
    try:
        async with database.session() as session:
            await session.execute("START TRANSACTION")
            inside = (await session.fetch_one(CONNECTION))["id"]
        assert await connection_id(database) != inside
        await eventually(lambda: not connected(admin, inside), what="its connection gone from the server")
    finally:
        await database.close()


async def test_closing_waits_for_the_connections_out_and_closes_them_as_they_come_back(mysql_database):
    database = await opened(mysql_database)
    inside, release = asyncio.Event(), asyncio.Event()

    async def hold():
        async with database.session() as session:
            await session.execute("DO 1")
            inside.set()
            await release.wait()
            return session.connection

    holding = asyncio.create_task(hold())
    await inside.wait()
    await connection_id(database)  # a second connection, idle once this returns
    idle = database._writer.idle[-1]
    closing = asyncio.create_task(database.close())
    for _ in range(20):
        await asyncio.sleep(0)
    assert idle.closed and not closing.done()  # the idle one at once; the one out is still in use
    release.set()
    held = await holding
    await closing
    assert held.closed and not database._writer.idle
    with pytest.raises(DatabaseUnavailable, match="closed"):  # not a wait for a turn that never comes
        await asyncio.wait_for(database.fetch_one("SELECT 1 AS one"), 10)
