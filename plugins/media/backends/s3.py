"""The S3 store: uploads go from the phone straight to the bucket with a presigned POST, downloads
come back through CloudFront signed URLs (or S3 presigned GETs when there is no CDN).

One aioboto3 session and one client per worker, opened in a cleanup context. The POST policy pins
everything the phone could otherwise choose: the exact key (under `incoming/`, which CloudFront may
not read and a lifecycle rule expires), the exact Content-Type, the exact size and server-side
encryption. Complete copies the checked upload to its final key (`publish`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from pathlib import Path
from urllib.parse import quote

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway import tracing
from plugins.media.backends.store import DEFAULT_PREFIX, INCOMING, PREFIXES, Changed, Head, Part, owner_prefixes
from plugins.media.backends.cloudfront import CloudFront
from plugins.media.content import SNIFF_BYTES

log = logging.getLogger("gateway.media")

ENCRYPTION = "AES256"
CONFIG = Config(
    signature_version="s3v4",
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
    max_pool_connections=50,
)
# Without a CDN there is no public path: avatar URLs are presigned for SigV4's longest, far beyond
# any cache TTL (see docs/decisions/avatar-urls.md).
AVATAR_PRESIGN_SECONDS = 7 * 24 * 3600
# CloudFront: at most 3,000 individually named paths in progress per distribution (wildcards have a
# separate limit of 15, so none are used); an invalidation waits at most this long, in the background.
INVALIDATION_MAX_PATHS = 3000
DELETE_MAX_KEYS = 1000  # S3's DeleteObjects takes at most 1,000 keys a request
INVALIDATION_SECONDS = 10


def invalidation_batches(keys: list[str]) -> list[list[str]]:
    """CloudFront paths for `keys`, as requests within CloudFront's limit: named, never wildcards."""
    paths = [f"/{quote(key)}" for key in keys]
    return [paths[i:i + INVALIDATION_MAX_PATHS] for i in range(0, len(paths), INVALIDATION_MAX_PATHS)]


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def pass_trace_on(request, **_) -> None:
    """The caller's trace header on S3 calls made for its request (gateway/tracing.py)."""
    request.headers.update(tracing.outgoing())


class S3Store:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = None
        self.cdn: CloudFront | None = None
        self.cloudfront = None  # a client for invalidations, with MEDIA_CDN_DISTRIBUTION_ID
        self._invalidations: set[asyncio.Task] = set()

    async def context(self, app):
        settings = self.settings
        if settings.cdn_url:
            pem = await asyncio.to_thread(Path(settings.cdn_private_key_file).read_bytes)
            self.cdn = CloudFront(settings.cdn_url, settings.cdn_key_pair_id, pem)
        session = aioboto3.Session()
        async with contextlib.AsyncExitStack() as clients:
            self.client = await clients.enter_async_context(session.client(
                "s3", region_name=settings.bucket_region or settings.region, endpoint_url=settings.endpoint_url,
                config=CONFIG))
            if settings.cdn_distribution_id:
                self.cloudfront = await clients.enter_async_context(session.client(
                    "cloudfront", region_name="us-east-1", endpoint_url=settings.endpoint_url, config=CONFIG))
            # After signing, so presigned URLs and forms never depend on it (S3 ignores unsigned headers).
            self.client.meta.events.register("before-send.s3", pass_trace_on)
            yield
            if self._invalidations:  # let those in flight finish, within their own bound
                await asyncio.wait(self._invalidations, timeout=INVALIDATION_SECONDS)
            self.client = self.cloudfront = None

    async def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> tuple[str, dict]:
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": ENCRYPTION}
        post = await self.client.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields,
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size],
                        {"x-amz-server-side-encryption": ENCRYPTION}],
            ExpiresIn=expires - int(time.time()),
        )
        return post["url"], post["fields"]

    async def head(self, key: str) -> Head | None:
        try:
            found = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return Head(found["ContentLength"], found.get("ContentType", ""), found["ETag"])

    async def read_start(self, key: str, etag: str) -> bytes:
        try:
            found = await self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag,
                                                 Range=f"bytes=0-{SNIFF_BYTES - 1}")
        except ClientError as exc:
            if error_code(exc) in ("412", "PreconditionFailed", "404", "NoSuchKey"):
                raise Changed(key) from None
            raise
        async with found["Body"] as body:
            return await body.read()

    async def publish(self, source: str, etag: str, key: str, content_type: str, attachment: bool) -> None:
        """A copy of exactly the checked version (CopySourceIfMatch), with the verified type and
        disposition as the object's own metadata (so CloudFront and presigned GETs serve them); one
        CopyObject request takes objects up to 5 GB, MEDIA_ATTACHMENT_MAX_BYTES's limit (docs/infra.md)."""
        try:
            await self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceIfMatch=etag, MetadataDirective="REPLACE", ContentType=content_type,
                ContentDisposition="attachment" if attachment else "inline", ServerSideEncryption=ENCRYPTION)
        except ClientError as exc:
            if error_code(exc) in ("412", "PreconditionFailed", "404", "NoSuchKey"):
                raise Changed(source) from None
            raise
        if source != key:
            await self.delete(source)

    async def download_url(self, key: str, expires: int) -> str:
        if self.cdn is not None:
            return self.cdn.signed_url(key, expires)
        return await self._presigned_get(key, expires - int(time.time()))

    async def public_url(self, key: str) -> str:
        if self.cdn is not None:
            return self.cdn.url(key)
        return await self._presigned_get(key, AVATAR_PRESIGN_SECONDS)

    async def _presigned_get(self, key: str, seconds: int) -> str:
        return await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds)

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=key)

    # Resumable uploads: S3 multipart uploads, the part URLs presigned UploadPart requests.

    async def start_multipart(self, key: str, content_type: str, size: int, part_size: int) -> str:
        answer = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type,
                                                           ServerSideEncryption=ENCRYPTION)
        return answer["UploadId"]

    async def part_url(self, key: str, upload_id: str, number: int, expires: int) -> str:
        return await self.client.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
            ExpiresIn=expires - int(time.time()))

    async def parts(self, key: str, upload_id: str) -> list[Part] | None:
        """Every part received (ListParts answers at most 1,000 a page)."""
        paginator = self.client.get_paginator("list_parts")
        found = []
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                found += [Part(p["PartNumber"], p["ETag"], p["Size"]) for p in page.get("Parts", [])]
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchUpload"):
                return None
            raise
        return found

    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        try:
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]})
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchUpload", "InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise Changed(key) from None
            raise

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchUpload"):
                raise

    async def multipart_uploads(self, prefix: str = INCOMING):
        paginator = self.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"], upload["Initiated"].timestamp()

    async def keys(self):
        paginator = self.client.get_paginator("list_objects_v2")
        for prefix in (INCOMING, *(f"{prefix}/" for prefix in (*PREFIXES.values(), DEFAULT_PREFIX))):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    async def delete_owner(self, owner: str) -> dict[str, int]:
        """Every object under the owner's prefixes, orphans too, and its resumable uploads in progress.
        In a versioned bucket this leaves delete markers; the bucket's lifecycle rule expires the
        noncurrent versions (docs/infra.md)."""
        removed, avatars = 0, []
        for prefix in filter(lambda prefix: prefix.startswith(INCOMING), owner_prefixes(owner)):
            async for key, upload_id, _ in self.multipart_uploads(prefix):
                await self.abort_multipart(key, upload_id)
        paginator = self.client.get_paginator("list_objects_v2")
        for prefix in owner_prefixes(owner):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix,
                                                 PaginationConfig={"PageSize": DELETE_MAX_KEYS}):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not keys:
                    continue
                answer = await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                if answer.get("Errors"):
                    errors = answer["Errors"]
                    raise RuntimeError(f"{len(errors)} objects not deleted: {errors[0].get('Code')}")
                removed += len(keys)
                avatars += [item["Key"] for item in keys if item["Key"].startswith(PREFIXES["avatar"] + "/")]
        if avatars and self.cloudfront is not None:
            task = asyncio.ensure_future(self._invalidate(avatars))  # best effort: the answer does not wait
            self._invalidations.add(task)
            task.add_done_callback(self._invalidations.discard)
        return {"media objects": removed}

    async def _invalidate(self, keys: list[str]) -> None:
        """The deleted avatars' public paths, dropped from CloudFront's caches (else they are served
        until the cache policy's TTL runs out). A failure is logged, never raised."""
        try:
            async with asyncio.timeout(INVALIDATION_SECONDS):
                for paths in invalidation_batches(keys):
                    await self.cloudfront.create_invalidation(
                        DistributionId=self.settings.cdn_distribution_id,
                        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths},
                                           "CallerReference": secrets.token_hex(16)})
        except Exception as exc:
            log.warning("CloudFront invalidation of %d deleted avatars failed: %r", len(keys), exc)

    async def probe(self) -> dict:
        await self.client.head_bucket(Bucket=self.bucket)
        return {"backend": "s3", "bucket": self.bucket, "downloads": "cloudfront" if self.cdn else "s3"}
