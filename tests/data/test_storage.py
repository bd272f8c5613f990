"""The database interface on MariaDB and SQLite alike, and what the MySQL pool does when a query
times out or its connection dies mid-statement."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.settings import load
from plugins.data import open_database
from plugins.data.api import DatabaseUnavailable
from plugins.data.settings import DataSettings
from tests.data.conftest import eventually


async def opened(url: str, **env):
    database = open_database(load(DataSettings, {"GATEWAY_ENV": "test", "DATABASE_URL": url, **env}))
    await database.start()
    return database


@pytest.fixture(params=["mysql", "sqlite"])
async def database(request, mysql_database, tmp_path):
    url = mysql_database if request.param == "mysql" else f"sqlite:///{tmp_path}/data.db"
    database = await opened(url, DATABASE_QUERY_TIMEOUT_SECONDS="2")
    yield database
    await database.close()


@pytest.fixture
async def table(database):
    name = f"t_{uuid.uuid4().hex[:10]}"
    async with database.transaction() as tx:
        await tx.execute(f"CREATE TABLE {name} (id VARCHAR(64) NOT NULL PRIMARY KEY, body VARCHAR(255) NOT NULL)")
    yield name
    async with database.transaction() as tx:
        await tx.execute(f"DROP TABLE {name}")


async def test_the_same_parameterised_sql_runs_on_both_engines(database, table):
    awkward = ["100% sure", "what?", "'); DROP TABLE users; --", "%s %(x)s", "ünïcødé ✓"]
    async with database.transaction() as tx:
        for i, body in enumerate(awkward):
            assert await tx.execute(f"INSERT INTO {table} (id, body) VALUES (?, ?)", (f"k{i}", body)) == 1
    rows = await database.fetch_all(f"SELECT id, body FROM {table} WHERE body <> ? ORDER BY id", ("nothing",))
    assert [row["body"] for row in rows] == awkward
    assert await database.fetch_one(f"SELECT body FROM {table} WHERE id = ?", ("k1",)) == {"body": "what?"}
    assert await database.fetch_one(f"SELECT body FROM {table} WHERE id = ?", ("absent",)) is None


async def test_a_transaction_that_fails_leaves_nothing_behind(database, table):
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} (id, body) VALUES (?, ?)", ("k", "v"))
            raise RuntimeError("changed my mind")
    assert await database.fetch_all(f"SELECT * FROM {table}") == []
    async with database.transaction() as tx:  # and the connection is usable again
        await tx.execute(f"INSERT INTO {table} (id, body) VALUES (?, ?)", ("k", "v"))
    assert await database.fetch_one(f"SELECT body FROM {table} WHERE id = ?", ("k",)) == {"body": "v"}


async def test_a_slow_query_times_out_and_its_connection_is_not_reused(mysql_database):
    database = await opened(mysql_database, DATABASE_QUERY_TIMEOUT_SECONDS="0.3")
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            await database.fetch_one("SELECT SLEEP(5)")
        assert time.monotonic() - started < 5  # the timeouts (0.3 s, and the read's one retry), not SLEEP(5)
        assert (await database.fetch_one("SELECT 1 AS one")) == {"one": 1}
    finally:
        await database.close()


async def test_each_statement_of_a_transaction_has_the_timeout_and_the_time_between_them_does_not_count(
        mysql_database):
    """The statements of a session share one timeout, armed only while each runs: a caller working
    longer than the timeout between statements is not cut off, a slow statement is, and its
    transaction is rolled back."""
    database = await opened(mysql_database, DATABASE_QUERY_TIMEOUT_SECONDS="0.3")
    table = f"t{uuid.uuid4().hex[:12]}"
    try:
        await database.execute(f"CREATE TABLE {table} (id VARCHAR(16) PRIMARY KEY)")
        async with database.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} (id) VALUES (?)", ("first",))
            await asyncio.sleep(0.5)  # the caller's own work, longer than the statement timeout
            await tx.execute(f"INSERT INTO {table} (id) VALUES (?)", ("second",))
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            async with database.transaction() as tx:
                await tx.execute(f"INSERT INTO {table} (id) VALUES (?)", ("third",))
                await tx.execute("SELECT SLEEP(5)")
        assert time.monotonic() - started < 5
        assert await database.fetch_all(f"SELECT id FROM {table} ORDER BY id") == [{"id": "first"}, {"id": "second"}]
    finally:
        await database.close()


async def test_a_wait_for_a_connection_past_the_connect_timeout_is_unavailable(mysql_database):
    database = await opened(mysql_database, DATABASE_POOL_MAX="1", DATABASE_CONNECT_TIMEOUT_SECONDS="0.3")
    inside, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with database.session() as session:
            await session.fetch_one("SELECT 1 AS one")
            inside.set()
            await release.wait()

    try:
        holding = asyncio.create_task(hold())
        await inside.wait()
        with pytest.raises(DatabaseUnavailable, match="no connection"):
            await asyncio.wait_for(database.fetch_one("SELECT 2 AS two"), 10)  # not forever
        release.set()
        await holding
        assert await database.fetch_one("SELECT 2 AS two") == {"two": 2}
    finally:
        await database.close()


async def test_a_statement_its_caller_cancels_is_a_cancellation_not_a_timeout(mysql_database, admin):
    """Only the statement timeout's own cancellation becomes TimeoutError (a 503); a request that goes
    away (aiohttp cancels its handler) is cancelled as it was, and the pool goes on."""
    database = await opened(mysql_database, DATABASE_QUERY_TIMEOUT_SECONDS="2")
    try:
        marker = uuid.uuid4().hex
        statement = asyncio.create_task(database.fetch_one(f"SELECT SLEEP(5) AS '{marker}'"))
        await eventually(lambda: running(admin, marker), what="the statement running")
        statement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await statement
        assert await database.fetch_one("SELECT 1 AS one") == {"one": 1}
    finally:
        await database.close()


async def test_column_definitions_are_parsed_once(mysql_database):
    """A result's column definitions, the same bytes for every run of a query, are parsed once
    (plugins/data/mysql.py, cache_column_definitions); every run still decodes its own values."""
    from aiomysql import connection

    database = await opened(mysql_database)
    parse = connection.FieldDescriptorPacket
    try:
        sql = "SELECT ? AS word, ? AS number, NULL AS nothing, CAST(? AS BINARY) AS raw"
        assert await database.fetch_one(sql, ("é", 7, "x")) == {"word": "é", "number": 7, "nothing": None, "raw": b"x"}
        hits = parse.cache_info().hits
        assert await database.fetch_one(sql, ("ü", 8, "y")) == {"word": "ü", "number": 8, "nothing": None, "raw": b"y"}
        assert parse.cache_info().hits == hits + 4
    finally:
        await database.close()


async def test_a_freed_connection_goes_to_the_caller_waiting_longest_not_to_a_newcomer(mysql_database):
    # aiomysql alone hands it to whoever asks first after the release, so under load some callers
    # waited past the timeout (503) while newer ones were served.
    database = await opened(mysql_database, DATABASE_POOL_MAX="1")
    order = []
    inside, release = asyncio.Event(), asyncio.Event()

    async def use(name: str) -> None:
        async with database.transaction() as tx:
            await tx.fetch_one("SELECT 1 AS one")
            order.append(name)
            if name == "holder":
                inside.set()
                await release.wait()

    async def holder_then_newcomer() -> None:
        await use("holder")
        await use("newcomer")  # asks the moment the holder's connection is free

    try:
        holding = asyncio.create_task(holder_then_newcomer())
        await inside.wait()
        waiting = asyncio.create_task(use("waiter"))
        for _ in range(20):  # the waiter gets in line: it does no I/O before it waits
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(holding, waiting)
        assert order == ["holder", "waiter", "newcomer"]
    finally:
        await database.close()


async def test_a_read_whose_connection_is_killed_is_retried_on_a_new_one(database, admin):
    if database.dialect != "mysql":
        pytest.skip("connections are MySQL's")
    marker = f"m{uuid.uuid4().hex}"
    read = asyncio.create_task(database.fetch_one(f"SELECT SLEEP(0.5) AS {marker}, CONNECTION_ID() AS id"))
    victim = await eventually(lambda: running(admin, marker), what="the read running on the server")
    with admin.cursor() as cursor:
        cursor.execute(f"KILL {victim}")
    row = await read
    assert row["id"] != victim


async def test_a_write_whose_connection_is_killed_is_not_retried_and_not_committed(database, table, admin):
    if database.dialect != "mysql":
        pytest.skip("connections are MySQL's")

    marker = f"m{uuid.uuid4().hex}"

    async def write():
        async with database.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} (id, body) VALUES (?, ?)", ("k", "v"))
            await tx.execute(f"SELECT SLEEP(1) AS {marker}")

    task = asyncio.create_task(write())
    victim = await eventually(lambda: running(admin, marker), what="the write running on the server")
    with admin.cursor() as cursor:
        cursor.execute(f"KILL {victim}")
    with pytest.raises(DatabaseUnavailable):
        await task
    assert await database.fetch_all(f"SELECT * FROM {table}") == []


async def test_an_unreachable_database_is_unavailable_not_an_error():
    from devsupport.servers import free_port

    database = await opened(f"mysql://root@127.0.0.1:{free_port()}/nothing", DATABASE_CONNECT_TIMEOUT_SECONDS="0.5")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await database.fetch_one("SELECT 1")
        assert caught.value.status == 503
    finally:
        await database.close()


def running(admin, marker: str) -> int | None:
    """The id of the connection running the statement that names `marker`."""
    with admin.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                       (f"SELECT SLEEP(%{marker}%",))
        row = cursor.fetchone()
    return row["ID"] if row else None
