"""Data plugin: the database, the cache and the resource layer every feature uses, and the
profile API (GET/PATCH/DELETE /v1/me, GET /v1/users/{id}).

Services it provides (`ctx.require(...)` them in a plugin that lists them in `requires`):

- "database" (`plugins.data.database.Database`): `await fetch_one(sql, params, stale_ok=False)`,
  `await fetch_all(...)`, `async with transaction() as tx: await tx.execute(sql, params)`, with
  `?` placeholders on MySQL and SQLite alike; `dialect`, `for_update`; and `migrations`, where a
  plugin registers its versioned SQL in `setup`:

      database.migrations.add("media", Path(__file__).parent / "migrations")

  holding `0001_media.sql`, or `0001_media.mysql.sql` + `0001_media.sqlite.sql` where the engines
  differ (see `plugins.data.migrator`). `python -m gateway migrate` applies them, and so does
  start-up when DATA_MIGRATE_ON_START is true (the default outside production).
- "cache" (`plugins.data.cache.Cache`): `await fetch(key, load)` (cache-aside with leases),
  `await invalidate(*keys)` after a write commits, `key(*parts)` to build keys.
- "resources" (`plugins.data.resources.Resources`): `define(name, table=, schema=, key="id",
  owner=None, views=None)` gives a `Resource` with get/patch/delete/list handlers; `resources["profile"]`
  is the profile resource, extended with `on_validate("avatar_media_id", ...)`,
  `on_render("avatar", ...)` and `on_delete(...)`.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.plugin import Plugin, SetupContext
from plugins.data import profiles
from plugins.data.cache import open_cache
from plugins.data.database import open_database
from plugins.data.resources import Resources
from plugins.data.settings import DataSettings


def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    database = open_database(settings)
    database.migrations.add("data", Path(__file__).parent / "migrations")
    cache = open_cache(settings)
    resources = Resources(database, cache, settings.read_max_lag)
    profile_resource = profiles.define(resources)

    async def lifespan(app: web.Application):
        await database.start()
        if settings.migrate_on_start:
            await database.migrations.apply(database)
        await cache.start()
        yield
        await cache.close()
        await database.close()

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

    ctx.provide("database", database)
    ctx.provide("cache", cache)
    ctx.provide("resources", resources)
    ctx.cleanup_ctx(lifespan)
    ctx.readiness_check("database", database.ping, critical=True)
    ctx.readiness_check("cache", cache.probe, critical=False)
    ctx.command("migrate", "apply pending schema migrations (safe when several instances run it)", migrate)
    profiles.add_routes(ctx, profile_resource, ctx.require("principal"))


plugin = Plugin(
    name="data",
    setup=setup,
    settings=DataSettings,
    requires=("principal",),
    provides=("database", "cache", "resources"),
    description="MySQL/SQLite storage, memcached cache-aside, the resource layer and the profile API",
)
