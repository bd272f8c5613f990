"""Profiles plugin: the caller's profile (GET/PATCH/DELETE /v1/me) and other users' public
profiles (GET /v1/users/{id}) on the data plugin's resource layer. It provides PROFILES
(plugins/profiles/api.py), the extension point through which other plugins add fields to every
profile and work to do when one is deleted.

routes.py holds the schemas, the service and the handlers; migrations/ the profiles table.
"""
from pathlib import Path

from gateway.plugin import Plugin, SetupContext
from plugins.auth.api import PRINCIPAL
from plugins.data.api import DATABASE, RESOURCES
from plugins.profiles.api import PROFILES
from plugins.profiles.routes import ProfileService


def setup(ctx: SetupContext) -> None:
    ctx.require(DATABASE).migrations.add("profiles", Path(__file__).parent / "migrations")
    service = ProfileService(ctx.require(RESOURCES), ctx.require(PRINCIPAL))
    ctx.provide(PROFILES, service)
    ctx.after_setup(lambda: service.install(ctx))


plugin = Plugin(name="profiles", setup=setup, requires=(PRINCIPAL, DATABASE, RESOURCES), provides=(PROFILES,))
