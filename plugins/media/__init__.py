"""Media plugin: user media (avatars and attachments) goes from the phone straight to S3 with a
presigned POST and comes back through CloudFront signed URLs; with no bucket configured, an
embedded store under ${GATEWAY_DATA_DIR}/media plays both parts.

routes.py is the API, backends/ the stores (S3 with CloudFront, and the local one), avatars.py
the profile's avatar field (through the profiles plugin's extension point), content.py the check
of what an upload is, quotas.py the per-user limits, cleanup.py the expiry of abandoned uploads
and of objects no record accounts for.
"""
from pathlib import Path

from gateway.plugin import Plugin, SetupContext
from plugins.auth.api import PRINCIPAL
from plugins.data.api import ACCOUNTS, DATABASE, RESOURCES
from plugins.media import cleanup, routes
from plugins.media.avatars import Avatars
from plugins.media.quotas import QuotaSchema, Quotas
from plugins.media.settings import MediaSettings
from plugins.profiles.api import PROFILES


def open_store(settings, core):
    """The configured store (not yet opened: its `context` does that)."""
    if settings.bucket:
        from plugins.media.backends.s3 import S3Store

        return S3Store(settings)
    from plugins.media.backends.local import LocalStore

    return LocalStore(f"{core.data_dir}/media", settings.local_public_url or f"http://{core.host}:{core.port}")


def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    database = ctx.require(DATABASE)
    principal = ctx.require(PRINCIPAL)
    database.migrations.add("media", Path(__file__).parent / "migrations")
    store = open_store(settings, ctx.core)
    media = ctx.require(RESOURCES).define("media", table="media", schema=routes.MediaSchema, owner="owner")
    avatars = Avatars(ctx.require(PROFILES), media, store, principal)
    quotas = Quotas(ctx.require(RESOURCES).define("media_quota", table="media_quotas", schema=QuotaSchema,
                                                  key="owner", owner="owner"), database, settings)
    ctx.require(ACCOUNTS).on_delete(store.delete_owner)  # the records go with the owned resources, after this
    ctx.cleanup_ctx(store.context)
    routes.add_routes(ctx, routes.MediaApi(media, store, avatars, quotas, database, principal, settings))
    if not settings.bucket:
        # The form's fields travel with the file; 64 KiB is ample room for them.
        upload_limit = max(settings.avatar_max_bytes, settings.attachment_max_bytes) + 65536
        ctx.route("POST", "/local-media", store.receive, "Upload to the local store (the form from POST /v1/media)",
                  public=True, tags=("media",), max_body=upload_limit,
                  responses={204: "Stored", 400: "The file is missing or its size is out of range",
                             403: "The policy is forged, expired, or does not cover the form"})
        ctx.route("PUT", "/local-media/parts/{upload_id}/{number}", store.receive_part,
                  "Upload one part of a resumable upload to the local store (a URL from the media API)", public=True,
                  tags=("media",), max_body=settings.multipart_part_bytes,
                  responses={200: "Stored; the ETag header names the part", 400: "Not the part's exact size",
                             403: "Bad or expired signature", 404: "No such upload"})
        ctx.route("GET", "/local-media/{prefix}/{owner}/{name}", store.serve, "Download from the local store", public=True,
                  tags=("media",), responses={200: "The object", 403: "Bad or expired signature", 404: "No such object"})
    ctx.readiness_check("media", store.probe, critical=False, timeout=2.0)
    ctx.command("media-cleanup", "delete pending media older than MEDIA_PENDING_EXPIRY_SECONDS and their uploads, then "
                "every object and resumable upload no record accounts for; recount quotas that differ from the media",
                cleanup.command(media.repository, quotas, database, store, settings))


plugin = Plugin(
    name="media",
    setup=setup,
    settings=MediaSettings,
    requires=(PRINCIPAL, DATABASE, RESOURCES, PROFILES, ACCOUNTS),
)
