"""Media plugin settings: where objects go (an S3 bucket, or the embedded local store), how
downloads are signed (CloudFront when configured, else S3), and what each purpose accepts."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from gateway.settings import CommaList, SettingsSchema
from plugins.media.backends.store import EXTENSIONS

MiB = 1024 * 1024
IMAGES = "image/jpeg,image/png,image/webp,image/heic"
CDN = {
    "cdn_url": "MEDIA_CDN_URL",
    "cdn_key_pair_id": "MEDIA_CDN_KEY_PAIR_ID",
    "cdn_private_key_file": "MEDIA_CDN_PRIVATE_KEY_FILE",
}
# S3's limit for a single POST upload, and for one CopyObject (complete copies each upload once).
MAX_POST_BYTES = 5 * 1024 * MiB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit
MIN_PART_BYTES = 5 * MiB  # S3's smallest part (but the last) of a multipart upload


def content_types(value: tuple[str, ...]) -> None:
    unknown = [name for name in value if name not in EXTENSIONS]
    if unknown or not value:
        raise ValidationError(f"list one or more of {', '.join(EXTENSIONS)} (unknown: {', '.join(unknown)})")


class MediaSettings(SettingsSchema):
    bucket = fields.Str(data_key="MEDIA_BUCKET", load_default=None)
    bucket_region = fields.Str(data_key="MEDIA_BUCKET_REGION", load_default=None)
    cdn_url = fields.Url(data_key="MEDIA_CDN_URL", load_default=None, schemes={"https", "http"}, require_tld=False)
    cdn_key_pair_id = fields.Str(data_key="MEDIA_CDN_KEY_PAIR_ID", load_default=None)
    cdn_private_key_file = fields.Str(data_key="MEDIA_CDN_PRIVATE_KEY_FILE", load_default=None)
    cdn_distribution_id = fields.Str(data_key="MEDIA_CDN_DISTRIBUTION_ID", load_default=None,
                                     validate=validate.Regexp(r"[A-Z0-9]{1,32}"))
    # The local store's URLs are built from this, never from a request's Host header.
    local_public_url = fields.Url(data_key="MEDIA_LOCAL_PUBLIC_URL", load_default=None, schemes={"https", "http"},
                                  require_tld=False)
    region = fields.Str(data_key="AWS_REGION", load_default=None)
    endpoint_url = fields.Url(data_key="AWS_ENDPOINT_URL", load_default=None, require_tld=False)
    avatar_types = CommaList(data_key="MEDIA_AVATAR_TYPES", load_default=tuple(IMAGES.split(",")),
                             validate=content_types)
    attachment_types = CommaList(data_key="MEDIA_ATTACHMENT_TYPES", validate=content_types,
                                 load_default=(*IMAGES.split(","), "video/mp4", "application/pdf"))
    avatar_max_bytes = fields.Int(data_key="MEDIA_AVATAR_MAX_BYTES", load_default=10 * MiB,
                                  validate=validate.Range(1, MAX_POST_BYTES))
    attachment_max_bytes = fields.Int(data_key="MEDIA_ATTACHMENT_MAX_BYTES", load_default=100 * MiB,
                                      validate=validate.Range(1, MAX_POST_BYTES))
    upload_expiry = fields.Int(data_key="MEDIA_UPLOAD_EXPIRY_SECONDS", load_default=600,
                               validate=validate.Range(10, 3600))
    download_expiry = fields.Int(data_key="MEDIA_DOWNLOAD_EXPIRY_SECONDS", load_default=3600,
                                 validate=validate.Range(10, MAX_PRESIGN_SECONDS))
    multipart_threshold = fields.Int(data_key="MEDIA_MULTIPART_THRESHOLD_BYTES", load_default=16 * MiB,
                                     validate=validate.Range(MIN_PART_BYTES, MAX_POST_BYTES))
    multipart_part_bytes = fields.Int(data_key="MEDIA_MULTIPART_PART_BYTES", load_default=8 * MiB,
                                      validate=validate.Range(MIN_PART_BYTES, MAX_POST_BYTES))
    quota_pending = fields.Int(data_key="MEDIA_QUOTA_PENDING", load_default=20, validate=validate.Range(1))
    quota_uploads_per_hour = fields.Int(data_key="MEDIA_QUOTA_UPLOADS_PER_HOUR", load_default=200,
                                        validate=validate.Range(1))
    quota_bytes = fields.Int(data_key="MEDIA_QUOTA_BYTES", load_default=5 * 1024 * MiB, validate=validate.Range(1))
    pending_expiry = fields.Int(data_key="MEDIA_PENDING_EXPIRY_SECONDS", load_default=86400,
                                validate=validate.Range(60, 30 * 86400))

    @validates_schema
    def consistent(self, data: dict, **_: object) -> None:
        configured = [name for name in CDN if data.get(name)]
        if configured and len(configured) < len(CDN):
            missing = [CDN[name] for name in CDN if name not in configured]
            raise ValidationError({variable: [f"CloudFront signing needs {', '.join(missing)} too (set all "
                                              "three, or none for S3 presigned downloads)"] for variable in missing})
        if data.get("cdn_distribution_id") and not configured:
            raise ValidationError("the distribution's avatars are invalidated only with MEDIA_CDN_URL set",
                                  "MEDIA_CDN_DISTRIBUTION_ID")
        if configured and not data.get("bucket"):
            raise ValidationError("CloudFront serves the S3 bucket: set MEDIA_BUCKET too", "MEDIA_CDN_URL")
        if not data.get("bucket") and data["environment"] == "production":
            raise ValidationError("production needs an S3 bucket, not the embedded local store", "MEDIA_BUCKET")
        if data["pending_expiry"] <= data["upload_expiry"]:
            raise ValidationError("must be longer than MEDIA_UPLOAD_EXPIRY_SECONDS, or uploads in flight expire",
                                  "MEDIA_PENDING_EXPIRY_SECONDS")
