"""Profiles plugin: the caller's profile (GET/PATCH /v1/me) and other users' public profiles
(GET /v1/users/{id}) on the data plugin's resource layer, and DELETE /v1/me, which deletes the
caller's account through the data plugin's ACCOUNTS (the profile is one of the things that go). It
provides PROFILES (plugins/profiles/api.py), the extension point through which other plugins add
fields to every profile.

routes.py holds the schemas, the service and the handlers; migrations/ the profiles table.
"""
from pathlib import Path

from gateway.plugin import Plugin, SetupContext
from plugins.auth.api import PRINCIPAL
from plugins.data.api import ACCOUNTS, DATABASE, RESOURCES
from plugins.profiles.api import PROFILES
from plugins.profiles.routes import ProfileService


def setup(ctx: SetupContext) -> None:
    ctx.require(DATABASE).migrations.add("profiles", Path(__file__).parent / "migrations")
    service = ProfileService(ctx.require(RESOURCES), ctx.require(PRINCIPAL), ctx.require(ACCOUNTS))
    ctx.provide(PROFILES, service)
    ctx.after_setup(lambda: service.install(ctx))


plugin = Plugin(name="profiles", setup=setup, requires=(PRINCIPAL, DATABASE, RESOURCES, ACCOUNTS),
                provides=(PROFILES,))
