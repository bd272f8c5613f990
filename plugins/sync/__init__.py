"""Sync plugin: what Amazon Cognito Sync did (closed to new customers), on this API: per caller,
named datasets of key-value records, each with a value, a sync count and a modification time;
pulls of the changes since a sync count (deletions as tombstones), atomic pushes that answer 409
with the server's records when a device pushed from a stale sync count, and limits like Cognito
Sync's. The dataset list is a cached representation with an ETag, so a device asking "anything
new?" costs about a cache hit. It provides SYNC (plugins/sync/api.py): an event after every change.

routes.py holds the API and the schemas, store.py all SQL, migrations/ the tables.
"""
from pathlib import Path

from gateway.plugin import Plugin, SetupContext
from plugins.auth.api import PRINCIPAL
from plugins.data.api import ACCOUNTS, DATABASE, RESOURCES
from plugins.sync.api import SYNC
from plugins.sync.routes import DatasetListSchema, SyncApi, add_routes, push_schema
from plugins.sync.settings import SyncSettings
from plugins.sync.store import Store


def setup(ctx: SetupContext) -> None:
    database = ctx.require(DATABASE)
    database.migrations.add("sync", Path(__file__).parent / "migrations")
    owners = ctx.require(RESOURCES).define("sync-datasets", table="sync_owners", schema=DatasetListSchema)
    store = Store(database, owners, ctx.settings)
    api = SyncApi(store, owners, ctx.require(PRINCIPAL))
    owners.on_render("datasets", lambda row: store.datasets(row["id"]))
    # Account deletion takes the caller's datasets with it: the one place that says how.
    ctx.require(ACCOUNTS).on_delete(api.forget)
    ctx.provide(SYNC, api)
    add_routes(ctx, api, push_schema(ctx.settings))


plugin = Plugin(name="sync", setup=setup, settings=SyncSettings, provides=(SYNC,),
                requires=(PRINCIPAL, DATABASE, RESOURCES, ACCOUNTS))
