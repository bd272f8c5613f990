"""MySQL (RDS in production, MariaDB in tests) through aiomysql connections in first-come-first-served
pools (plugins/data/pool.py), with one documented patch of aiomysql (`cache_column_definitions`, below).

Every statement runs under a timeout. A connection that saw a timeout, a lost link (2006/2013) or
a read-only error (an RDS failover has just moved the writer: 1290/1792/1836) is closed instead of
going back to the pool, and for the server-side cases the idle connections are dropped too: they
point at the same dead or demoted server. Connections autocommit, so a pooled connection never
keeps an old snapshot; `transaction()` opens an explicit one.

With `tls=verify`/`tls=required` in the URL every connection is TLS: aiomysql would quietly go on in
plaintext with a server that does not offer TLS, so such a connection is refused here. When MySQL
refuses the password of a new connection (1045, a rotated secret) and `DATABASE_SECRET_ARN` is set,
the credentials are re-read (plugins/data/secrets.py) and the connection is tried once more.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import AsyncIterator, Awaitable, Callable

import aiomysql
import pymysql
from aiomysql import connection as aiomysql_connection

from plugins.data.api import DatabaseUnavailable, Params
from plugins.data.migrator import Migrations
from plugins.data.pool import Pool
from plugins.data.secrets import Credentials, SecretsManager
from plugins.data.settings import mysql_params

LOST = {1927, 2003, 2006, 2013, 2055}  # 1927: this connection was killed
ACCESS_DENIED = 1045
INSECURE_TRANSPORT = 3159  # MySQL's refusal under require_secure_transport; MariaDB answers 1045
READ_ONLY = {1290, 1792, 1836}
MIGRATION_TIMEOUT = 900.0  # DDL on a large table takes long, but not forever
LOCK_WAIT_SECONDS = 120


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def describe(exc: BaseException) -> str:
    """The error and what caused it: aiomysql reports a failed TLS handshake as "Can't connect"."""
    text = repr(exc)
    if exc.__cause__ is not None:
        text += f" caused by {type(exc.__cause__).__name__}: {exc.__cause__}"
    return text


def is_broken(exc: BaseException) -> bool:
    """After this the connection's state is unknown (mid-statement) or it is useless."""
    return (isinstance(exc, (TimeoutError, asyncio.CancelledError, pymysql.err.InterfaceError, OSError))
            or error_code(exc) in LOST | READ_ONLY)


def cache_column_definitions() -> None:
    """aiomysql parses the definition of every column of every result set in Python (pymysql's
    FieldDescriptorPacket: six length-coded strings, four decodes and a struct each): for the nine
    columns of a profile that was 18 % of a PATCH's CPU in the worker. A query's definitions arrive
    as the same bytes every time, so each distinct packet is parsed once and the parsed packet,
    which nothing changes afterwards, is kept (at most 4096). aiomysql looks the name up in its
    module when a result arrives; it is pinned below 0.4, and
    tests/data/test_storage.py::test_column_definitions_are_parsed_once fails if this stops working."""
    aiomysql_connection.FieldDescriptorPacket = functools.lru_cache(maxsize=4096)(
        aiomysql_connection.FieldDescriptorPacket)


cache_column_definitions()


@functools.lru_cache(maxsize=2048)
def paramstyle(sql: str) -> str:
    """The shared `?` placeholders as pymysql's `%s` (literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class Session:
    """Statements on one connection, each under its timeout, and the wait for that connection under
    the connect timeout. While checked out the session is listed in its database's `running`, with
    `due`, when what it waits for is due, set as the wait or each statement starts. The database's
    watchdog cancels a session past due that is still waiting for the database, for a connection
    or for a statement's answer (not the caller's own work between statements), at most a quarter of
    the timeout late, and its Checkout turns that cancellation into TimeoutError. No coroutine of
    ours runs around a statement: an asyncio Timeout around each cost two event-loop timers (~20k
    instructions), and each frame between a handler and the socket is resumed on every wait."""

    __slots__ = ("connection", "timeout", "clock", "task", "due", "expired", "cursors")

    def __init__(self, timeout: float, connect_timeout: float, clock: Callable[[], float]) -> None:
        self.connection: aiomysql.Connection | None = None
        self.timeout = timeout
        self.clock = clock
        self.task = asyncio.current_task()
        self.due = self.clock() + connect_timeout
        self.expired = False
        # one for the rows, one for counts (each result is read whole before the next statement); a
        # count's is plain, as DictCursor's turning rows into dicts is one more coroutine a statement
        self.cursors: dict[bool, aiomysql.Cursor] = {}

    def waiting(self) -> bool:
        """Whether the session waits for the database: for a connection, or for an answer (asyncio's
        StreamReader, which aiomysql reads, holds a waiter only while a read waits)."""
        connection = self.connection
        if connection is None:
            return True
        reader = connection._reader
        return reader is not None and reader._waiter is not None

    def expire(self) -> None:
        """The watchdog's call: what the session waits for has run past its time (cancelled once)."""
        if not self.expired:
            self.expired = True
            self.task.cancel()

    def timeout_or(self, exc: BaseException) -> BaseException:
        """TimeoutError for the watchdog's cancellation, when it alone cancelled the task; any other
        exception (a caller's cancellation too) as it is."""
        if isinstance(exc, asyncio.CancelledError) and self.expired and self.task.uncancel() == 0:
            self.expired = False
            return TimeoutError("no answer in time")
        return exc

    def _run(self, sql: str, params: Params, fetch: str) -> Awaitable:
        self.due = self.clock() + self.timeout
        control = CONTROL.get(sql)  # aiomysql's own begin() or commit(): an OK packet, no result set
        if control is not None:
            return control(self.connection)
        counting = fetch == "count"
        cursor = self.cursors.get(counting)
        if cursor is None:
            kind = aiomysql.Cursor if counting else aiomysql.DictCursor
            cursor = self.cursors[counting] = kind(self.connection, self.connection.echo)
        # without parameters the SQL goes as written (pymysql would %-format it otherwise)
        statement = cursor.execute(paramstyle(sql), tuple(params)) if params else cursor.execute(sql)
        return statement if counting else self._fetched(cursor, statement, fetch)  # execute() answers the count

    @staticmethod
    async def _fetched(cursor: aiomysql.DictCursor, statement: Awaitable, fetch: str):
        await statement
        if fetch == "one":
            return await cursor.fetchone()
        return list(await cursor.fetchall())

    def execute(self, sql: str, params: Params = ()) -> Awaitable[int]:
        return self._run(sql, params, "count")

    def fetch_one(self, sql: str, params: Params = ()) -> Awaitable[dict | None]:
        return self._run(sql, params, "one")

    def fetch_all(self, sql: str, params: Params = ()) -> Awaitable[list[dict]]:
        return self._run(sql, params, "all")


# A transaction's BEGIN and COMMIT as aiomysql sends them (an OK packet read, not a result set).
CONTROL = {"BEGIN": aiomysql.Connection.begin, "COMMIT": aiomysql.Connection.commit}


class Checkout:
    """`async with` a session on a pooled connection (and, for a transaction, BEGIN on entry and
    COMMIT on a clean exit, ROLLBACK otherwise). A connection that failed (`is_broken`) is closed
    rather than pooled, and the failure raised as DatabaseUnavailable. A class, not a generator
    context: that cost ~10k instructions more on every use."""

    __slots__ = ("database", "pool", "timeout", "transaction", "session")

    def __init__(self, database: MySQLDatabase, pool: Pool, timeout: float, transaction: bool) -> None:
        self.database = database
        self.pool = pool
        self.timeout = timeout
        self.transaction = transaction

    async def __aenter__(self) -> Session:
        database, pool = self.database, self.pool
        database.waits += pool.turns.locked()
        session = self.session = Session(self.timeout, database.settings.connect_timeout, database.clock)
        database._running.add(session)
        try:
            session.connection = await database._checkout(pool)
        except BaseException as exc:
            database._running.discard(session)
            failure = session.timeout_or(exc)
            unavailable = database._unavailable(pool, failure) if isinstance(failure, Exception) else failure
            if unavailable is exc:
                raise
            raise unavailable from failure
        if self.transaction:
            try:
                await session.execute("BEGIN")
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        return session

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        database, pool, session = self.database, self.pool, self.session
        connection = session.connection
        raised = None  # a failure of the exit itself (COMMIT), or a timeout, to raise in place of the exit
        if exc is not None and (failure := session.timeout_or(exc)) is not exc:
            exc = raised = failure
        try:
            if self.transaction and exc is None:
                try:
                    await session.execute("COMMIT")
                except BaseException as failed:
                    exc = raised = session.timeout_or(failed)
            database._running.discard(session)  # its waits are over: the rollback has a timeout of its own
            if self.transaction and exc is not None and not connection.closed:
                try:
                    async with asyncio.timeout(self.timeout):
                        await connection.rollback()
                except Exception:
                    connection.close()
            if exc is not None and is_broken(exc):
                connection.close()
                if error_code(exc) in LOST | READ_ONLY:
                    pool.clear()
                if isinstance(exc, Exception):
                    database.errors += 1
                    raise DatabaseUnavailable(repr(exc)) from exc
            if raised is not None:
                raise raised
        finally:
            pool.release(connection)


class MySQLDatabase:
    dialect = "mysql"
    for_update = " FOR UPDATE"

    @staticmethod
    def insert_keeping(key: str) -> str:
        return f" ON DUPLICATE KEY UPDATE {key} = {key}"

    def __init__(self, settings, migrations: Migrations) -> None:
        self.settings = settings
        self.migrations = migrations
        self.waits = 0  # requests that queued for a pooled connection
        self.errors = 0  # DatabaseUnavailable raised (503s, unless a read's retry succeeded)
        self._writer: Pool | None = None
        self._reader: Pool | None = None
        self.replica = settings.database_read_url is not None
        self._running: set[Session] = set()  # the sessions checked out (Session)
        self._watchdog: asyncio.Task | None = None
        self.secret: SecretsManager | None = None
        self.credentials: Credentials | None = None
        if settings.database_secret_arn:
            url = mysql_params(settings.database_url)
            self.secret = SecretsManager(settings.database_secret_arn, settings.aws_region, settings.aws_endpoint_url)
            self.credentials = Credentials(url["user"], url["password"], self.secret.fetch,
                                           settings.secret_reread_interval)

    async def start(self) -> None:
        # no connection is opened yet: the process starts (and reports not ready) while the database is down
        self._writer = self._pool(self.settings.database_url)
        self._reader = self._pool(self.settings.database_read_url) if self.settings.database_read_url \
            else self._writer
        self.clock = asyncio.get_running_loop().time  # the watchdog's and every session's
        self._watchdog = asyncio.create_task(self._time_statements())

    async def _time_statements(self) -> None:
        """Every quarter of the shorter timeout, the waits due by now are cancelled (Session)."""
        clock = self.clock
        while True:
            await asyncio.sleep(min(self.settings.query_timeout, self.settings.connect_timeout) / 4)
            now = clock()
            for session in [session for session in self._running if session.due <= now and session.waiting()]:
                session.expire()

    def _pool(self, url: str) -> Pool:
        recycle, params = self.settings.pool_recycle, mysql_params(url)
        params.update(connect_timeout=self.settings.connect_timeout, autocommit=True, charset="utf8mb4",
                      init_command=f"SET SESSION wait_timeout = {recycle + 60}")
        return Pool(params, self.settings.pool_max, recycle, tls=params["ssl"] is not None)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for pool in {self._writer, self._reader} - {None}:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.query_timeout):
                    await pool.close()
        if self.secret is not None:
            await self.secret.close()

    async def _checkout(self, pool: Pool) -> aiomysql.Connection:
        """A turn in `pool`'s queue and a connection for it: an idle one, else a new one."""
        if pool.closing:  # its turns are all taken by close(): a wait would never end
            raise DatabaseUnavailable("no connection: the database is closed")
        await pool.turns.acquire()
        try:
            return pool.take_idle() or await self._connect(pool)
        except BaseException:
            pool.release(None)
            raise

    async def _connect(self, pool: Pool) -> aiomysql.Connection:
        credentials = self.credentials
        version = credentials.version if credentials else 0
        try:
            connection = await aiomysql.connect(**pool.params)
        except pymysql.err.OperationalError as exc:
            if credentials is None or error_code(exc) != ACCESS_DENIED or not await credentials.renew(version):
                raise
            for each in {self._writer, self._reader}:
                each.params.update(user=credentials.user, password=credentials.password)
            connection = await aiomysql.connect(**pool.params)
        if pool.tls and not connection._secure:  # aiomysql's own flag, set once TLS is up
            connection.close()
            raise DatabaseUnavailable("no connection: the server does not offer TLS, which the URL's tls option requires")
        return connection

    def _session(self, pool: Pool, timeout: float, transaction: bool = False) -> Checkout:
        """A session on a connection of `pool` (one turn in its queue), each statement under `timeout`."""
        return Checkout(self, pool, timeout, transaction)

    def _unavailable(self, pool: Pool, exc: Exception) -> Exception:
        """What a failure to get a connection is raised as."""
        if is_broken(exc) or isinstance(exc, pymysql.err.OperationalError):
            hint = " (a plaintext connection: if the server requires TLS, add ?tls=verify)" \
                if not pool.tls and error_code(exc) in (ACCESS_DENIED, INSECURE_TRANSPORT) else ""
            self.errors += 1
            return DatabaseUnavailable(f"no connection: {describe(exc)}{hint}")
        return exc

    async def _read(self, sql: str, params: Params, stale_ok: bool, fetch: str):
        pool = self._reader if stale_ok else self._writer
        for attempt in (1, 2):
            try:
                async with self._session(pool, self.settings.query_timeout) as session:
                    return await session._run(sql, params, fetch)
            except DatabaseUnavailable:
                if attempt == 2:
                    raise  # a read is idempotent: it gets one more try on a fresh connection

    async def fetch_one(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> dict | None:
        return await self._read(sql, params, stale_ok, "one")

    async def fetch_all(self, sql: str, params: Params = (), *, stale_ok: bool = False) -> list[dict]:
        return await self._read(sql, params, stale_ok, "all")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement on its own, committed by itself (the connections autocommit): one round trip
        where BEGIN, the statement and COMMIT take three. Not retried: a write need not be idempotent."""
        async with self.session() as session:
            return await session.execute(sql, params)

    def session(self) -> contextlib.AbstractAsyncContextManager[Session]:
        """One writer connection for a few statements, each committed by itself: one turn in the queue."""
        return self._session(self._writer, self.settings.query_timeout)

    def transaction(self) -> Checkout:
        """A writer connection in a transaction: BEGIN, the statements, COMMIT (a failure rolls back)."""
        return self._session(self._writer, self.settings.query_timeout, transaction=True)

    @contextlib.asynccontextmanager
    async def locked(self, name: str) -> AsyncIterator[Session]:
        """GET_LOCK is held by this connection's session: a second migrator waits here."""
        async with self._session(self._writer, MIGRATION_TIMEOUT) as session:
            row = await session.fetch_one("SELECT GET_LOCK(?, ?) AS got", (name, LOCK_WAIT_SECONDS))
            if row["got"] != 1:
                raise DatabaseUnavailable(f"lock {name!r} still held after {LOCK_WAIT_SECONDS}s")
            await session.execute("SET SESSION sql_notes = 0")  # "already exists" notes of IF NOT EXISTS
            try:
                yield session
            finally:
                with contextlib.suppress(Exception):
                    await session.execute("SET SESSION sql_notes = 1")
                    await session.execute("SELECT RELEASE_LOCK(?)", (name,))

    async def has_table(self, name: str) -> bool:
        return await self.fetch_one("SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = DATABASE() AND table_name = ?", (name,)) is not None

    async def ping(self) -> dict:
        for pool in {self._writer, self._reader}:
            await self.fetch_one("SELECT 1 AS ok", stale_ok=pool is self._reader)
        return {"dialect": self.dialect, "replica": self.replica}
