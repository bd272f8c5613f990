"""Data plugin: the infrastructure every feature stores through. It provides DATABASE (MySQL or
SQLite behind one interface, with per-plugin migrations), CACHE (memcached or in-process,
cache-aside with leases), RESOURCES (a table as an HTTP resource) and ACCOUNTS (deleting all of a
subject's data, accounts.py, with its table in migrations/); see plugins/data/api.py,
the only module of it other plugins import. It registers no route and requires nothing.

api.py is the contract; mysql.py and sqlite.py the engines, migrator.py the migrations, appuser.py
the app's own MySQL user (a deploy makes it after migrating); cache.py the cache-aside protocol
over memcached.py or memory.py; repository.py (SQL), representations.py (cached renderings) and
resources.py (HTTP adapters) the resource layer.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from gateway.lifecycle import LIFECYCLE
from gateway.plugin import Plugin, SetupContext
from plugins.data import appuser
from plugins.data.accounts import Accounts
from plugins.data.api import ACCOUNTS, CACHE, DATABASE, RESOURCES, Database, DatabaseUnavailable
from plugins.data.cache import Cache
from plugins.data.migrator import Migrations
from plugins.data.resources import Resources
from plugins.data.settings import DataSettings

log = logging.getLogger("gateway.data")


def open_database(settings) -> Database:
    """The configured engine, not yet connected (`start()` connects)."""
    if settings.database_url.startswith("mysql:"):
        from plugins.data.mysql import MySQLDatabase

        return MySQLDatabase(settings, Migrations())
    from plugins.data.sqlite import SQLiteDatabase

    return SQLiteDatabase(settings.database_url[len("sqlite:///"):], settings.query_timeout, Migrations())


def open_cache(settings) -> Cache:
    if settings.cache_url.startswith("memory:"):
        from plugins.data.memory import MemoryCache

        return Cache(MemoryCache(settings.cache_memory_items), settings.cache_ttl)
    from plugins.data.memcached import Memcached

    return Cache(Memcached(settings.cache_url, settings.cache_timeout, settings.cache_max_connections),
                 settings.cache_ttl)


async def migrate_when_reachable(database: Database, pause: float = 2.0) -> None:
    """DATA_MIGRATE_ON_START (development) with the database down at start-up: apply the migrations
    once it answers, so the server comes up not ready and becomes ready by itself."""
    while True:
        await asyncio.sleep(pause)
        try:
            await database.migrations.apply(database)
            log.info("migrations applied: the database is back")
            return
        except DatabaseUnavailable:
            continue


def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    database = open_database(settings)
    cache = open_cache(settings)

    async def lifespan(app: web.Application):
        await database.start()  # connects lazily: a database that is down makes the app not ready
        migrating = None
        if settings.migrate_on_start and not app[LIFECYCLE].inspecting:
            try:
                await database.migrations.apply(database)
            except DatabaseUnavailable as exc:
                log.warning("database unreachable at start-up; migrations will wait for it: %s", exc)
                migrating = asyncio.create_task(migrate_when_reachable(database))
        await cache.start()
        yield
        if migrating is not None:
            migrating.cancel()
        await cache.close()
        await database.close()

    async def schema() -> dict:
        pending, newer = await database.migrations.status(database)
        if pending:
            raise RuntimeError("pending migrations: " + ", ".join(
                f"{m.plugin} {m.version:04d}_{m.name}" for m in pending) + " (run `python -m gateway migrate`)")
        return {"newer": newer} if newer else {}

    async def migrate(app: web.Application, args) -> int:
        await database.start()
        try:
            applied = await database.migrations.apply(database)
        finally:
            await database.close()
        for migration in applied:
            print(f"applied {migration.plugin} {migration.version:04d}_{migration.name}")
        print(f"migrate: {len(applied)} applied, schema up to date")
        return 0

    ctx.provide(DATABASE, database)
    ctx.provide(CACHE, cache)
    ctx.cleanup_ctx(lifespan)
    ctx.readiness_check("database", database.ping, critical=True)
    ctx.readiness_check("schema", schema, critical=True)
    ctx.readiness_check("cache", cache.probe, critical=False)
    ctx.counter("cache_hits", "cache-aside reads answered from the cache", lambda: cache.hits)
    ctx.counter("cache_misses", "cache-aside reads that went to the database", lambda: cache.misses)
    ctx.counter("db_pool_waits", "callers that queued for a database connection", lambda: database.waits)
    ctx.counter("db_errors", "database unavailable (answered 503 unless a read's retry succeeded)",
                lambda: database.errors)
    ctx.command("migrate", "apply pending schema migrations (safe when several instances run it)", migrate)
    ctx.command("app-user", "as the master user: create or align the app's least-privilege MySQL user from its secret",
                appuser.command(database, settings), arguments=appuser.arguments)

    resources = Resources(database, cache, settings.read_max_lag)
    accounts = Accounts(database, resources)
    database.migrations.add("accounts", Path(__file__).parent / "migrations")

    async def sweep(app: web.Application, args) -> int:
        runner = web.AppRunner(app)  # starts the app's resources (database, cache, stores) without serving
        await runner.setup()
        try:
            finished, left = await accounts.sweep()
        finally:
            await runner.cleanup()
        print(f"accounts-sweep: {finished} pending account deletions finished, {left} still pending")
        return 1 if left else 0

    ctx.provide(RESOURCES, resources)
    ctx.provide(ACCOUNTS, accounts)
    ctx.command("accounts-sweep", "finish account deletions that stopped half-way (DELETE /v1/me)", sweep)


plugin = Plugin(name="data", setup=setup, settings=DataSettings, provides=(DATABASE, CACHE, RESOURCES, ACCOUNTS))
