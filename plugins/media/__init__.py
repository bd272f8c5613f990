"""Media plugin: user media (avatars and attachments) goes from the phone straight to S3 with a
presigned POST and comes back through CloudFront signed URLs; with no bucket configured, an
embedded store under ${GATEWAY_DATA_DIR}/media plays both parts.

routes.py is the API, backends/ the stores (S3 with CloudFront, and the local one), avatars.py
the profile's avatar (validation, rendering, deletion), cleanup.py the expiry of abandoned uploads.
"""
from pathlib import Path

from gateway.plugin import Plugin, SetupContext
from plugins.media import cleanup, routes
from plugins.media.avatars import Avatars
from plugins.media.backends import open_store
from plugins.media.settings import MediaSettings


def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    database = ctx.require("database")
    resources = ctx.require("resources")
    principal = ctx.require("principal")
    database.migrations.add("media", Path(__file__).parent / "migrations")
    store = open_store(settings, ctx.core.data_dir)
    media = resources.define("media", table="media", schema=routes.MediaSchema, owner="owner")
    avatars = Avatars(resources["profile"], media, store, principal)
    ctx.cleanup_ctx(store.context)
    routes.add_routes(ctx, routes.MediaApi(media, store, avatars, database, principal, settings))
    if not settings.bucket:
        # The form's fields travel with the file; 64 KiB is ample room for them.
        upload_limit = max(settings.avatar_max_bytes, settings.attachment_max_bytes) + 65536
        ctx.route("POST", "/local-media", store.receive, "Upload to the local store (the form from POST /v1/media)",
                  public=True, tags=("media",), max_body=upload_limit,
                  responses={204: "Stored", 400: "The file is missing or its size is out of range",
                             403: "The policy is forged, expired, or does not cover the form"})
        ctx.route("GET", "/local-media/{prefix}/{owner}/{name}", store.serve, "Download from the local store", public=True,
                  tags=("media",), responses={200: "The object", 403: "Bad or expired signature", 404: "No such object"})
    ctx.readiness_check("media", store.probe, critical=False, timeout=2.0)
    ctx.command("media-cleanup", "delete pending media older than MEDIA_PENDING_EXPIRY_SECONDS and their objects",
                cleanup.command(database, store, settings.pending_expiry))


plugin = Plugin(
    name="media",
    setup=setup,
    settings=MediaSettings,
    requires=("principal", "database", "resources"),
    description="Presigned S3 uploads, CloudFront signed downloads, a local store, and profile avatars",
)
