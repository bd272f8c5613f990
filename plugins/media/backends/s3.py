"""The S3 store: uploads go from the phone straight to the bucket with a presigned POST, downloads
come back through CloudFront signed URLs (or S3 presigned GETs when there is no CDN).

One aioboto3 session and one client per worker, opened in a cleanup context. The POST policy pins
everything the phone could otherwise choose: the exact key, the exact Content-Type, the size range,
server-side encryption, and the `gateway-status=pending` tag that lets the bucket's lifecycle rule
expire uploads nobody completed (`finish` removes it).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from plugins.media.backends.store import Head, owner_prefixes
from plugins.media.backends.cloudfront import CloudFront

ENCRYPTION = "AES256"
PENDING_TAG = "<Tagging><TagSet><Tag><Key>gateway-status</Key><Value>pending</Value></Tag></TagSet></Tagging>"
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


class S3Store:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = None
        self.cdn: CloudFront | None = None

    async def context(self, app):
        settings = self.settings
        if settings.cdn_url:
            pem = await asyncio.to_thread(Path(settings.cdn_private_key_file).read_bytes)
            self.cdn = CloudFront(settings.cdn_url, settings.cdn_key_pair_id, pem)
        session = aioboto3.Session()
        async with session.client("s3", region_name=settings.bucket_region or settings.region,
                                  endpoint_url=settings.endpoint_url, config=CONFIG) as client:
            self.client = client
            yield
            self.client = None

    async def presign_upload(self, key: str, content_type: str, max_size: int, expires: int) -> tuple[str, dict]:
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": ENCRYPTION, "tagging": PENDING_TAG}
        post = await self.client.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields,
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_size],
                        {"x-amz-server-side-encryption": ENCRYPTION}, {"tagging": PENDING_TAG}],
            ExpiresIn=expires - int(time.time()),
        )
        return post["url"], post["fields"]

    async def head(self, key: str) -> Head | None:
        try:
            found = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return Head(found["ContentLength"], found.get("ContentType", ""))

    async def finish(self, key: str) -> None:
        await self.client.delete_object_tagging(Bucket=self.bucket, Key=key)

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

    async def delete_owner(self, owner: str) -> dict[str, int]:
        """Every object under the owner's prefixes, orphans too. In a versioned bucket this leaves
        delete markers; the bucket's lifecycle rule expires the noncurrent versions (docs/infra.md)."""
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for prefix in owner_prefixes(owner):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):  # at most 1,000 keys a page
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not keys:
                    continue
                answer = await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                if answer.get("Errors"):
                    raise RuntimeError(f"{len(answer['Errors'])} objects not deleted: {answer['Errors'][0].get('Code')}")
                removed += len(keys)
        return {"media objects": removed}

    async def probe(self) -> dict:
        await self.client.head_bucket(Bucket=self.bucket)
        return {"backend": "s3", "bucket": self.bucket, "downloads": "cloudfront" if self.cdn else "s3"}
