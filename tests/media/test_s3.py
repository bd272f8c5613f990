"""The media API against S3 (the moto server over HTTP): the phone's whole flow, and, because moto
checks neither POST policies nor signatures, the policy and signature we hand out, checked here."""
from __future__ import annotations

import base64
import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from gateway.app import build
from gateway.settings import load
from plugins.media.settings import MediaSettings
from tests.media.conftest import REGION
from tests.media.helpers import JPEG, download, upload


@pytest.fixture
async def app(start_app, s3_env):
    return await start_app(s3_env)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_presign_upload_complete_download(app, caller, s3, bucket):
    auth, sub = caller()
    created = await app.create(auth, "attachment")
    media, form = created["media"], created["upload"]
    key = f"u/{sub}/{media['id']}.jpg"
    assert form["method"] == "POST" and form["url"].endswith(f"/{bucket}")
    assert form["fields"]["key"] == f"incoming/{key}"

    assert (await upload(form, JPEG)).status == 204
    completed = await app.complete(auth, media["id"])
    assert completed.status == 200 and (await completed.json())["status"] == "ready"
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]  # copied, upload gone
    stored = s3.head_object(Bucket=bucket, Key=key)
    assert (stored["ContentType"], stored["ContentDisposition"], stored["ServerSideEncryption"]) == (
        "image/jpeg", "attachment", "AES256")

    fetched = await (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).json()
    assert fetched["url"].startswith(f"{s3.meta.endpoint_url}/{bucket}/{key}?") and "X-Amz-Signature=" in fetched["url"]
    assert abs(epoch(fetched["url_expires_at"]) - (time.time() + 3600)) < 5
    status, body, content_type = await download(fetched["url"])
    assert (status, body, content_type) == (200, JPEG, "image/jpeg")


async def test_complete_before_upload_is_409_and_a_mismatch_too(app, caller):
    auth, _ = caller()
    created = await app.create(auth, "attachment")
    media_id = created["media"]["id"]
    assert (await app.complete(auth, media_id)).status == 409
    # moto does not enforce the policy, so the object can arrive with another type: complete notices
    assert (await upload(created["upload"], JPEG, {**created["upload"]["fields"], "Content-Type": "image/png"})).status == 204
    refused = await app.complete(auth, media_id)
    assert refused.status == 409 and "image/png" in (await refused.json())["detail"]
    assert (await (await app.client.get(f"/v1/media/{media_id}", headers=auth)).json())["status"] == "pending"
    assert (await app.complete(auth, media_id)).status == 409  # the mismatch was removed: nothing there now


@pytest.mark.parametrize("uploaded", [len(JPEG) - 1, len(JPEG) + 1])
async def test_an_upload_of_another_size_than_declared_is_refused_and_removed(app, caller, s3, bucket, uploaded):
    """moto does not enforce the policy's exact content-length-range; complete checks it again."""
    auth, _ = caller()
    created = await app.create(auth, "attachment")
    data = (JPEG + b"\0")[:uploaded]
    assert (await upload(created["upload"], data)).status == 204
    refused = await app.complete(auth, created["media"]["id"])
    detail = (await refused.json())["detail"]
    assert refused.status == 409 and f"{uploaded} bytes, not the {len(JPEG)} declared" in detail
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


async def test_delete_removes_the_object_then_the_record(app, caller, s3, bucket):
    auth, sub = caller()
    media = await app.ready(auth, "attachment")
    key = f"u/{sub}/{media['id']}.jpg"
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(JPEG)
    assert (await app.client.delete(f"/v1/media/{media['id']}", headers=auth)).status == 204
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key)
    assert (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).status == 404
    assert (await app.client.delete(f"/v1/media/{media['id']}", headers=auth)).status == 204


async def test_the_post_policy_pins_key_type_size_encryption_and_expiry_and_is_signed_with_sigv4(app, caller, bucket):
    auth, sub = caller()
    before = time.time()
    created = await app.create(auth, "avatar", "image/png", 1234)
    fields, media = created["upload"]["fields"], created["media"]
    key = f"incoming/avatars/{sub}/{media['id']}.png"
    policy = json.loads(base64.b64decode(fields["policy"]))

    expiration = epoch(policy["expiration"])
    assert before + 600 - 2 <= expiration <= time.time() + 600 + 1
    assert abs(expiration - epoch(created["upload"]["expires_at"])) <= 1
    date = fields["x-amz-date"]
    credential = f"testing/{date[:8]}/{REGION}/s3/aws4_request"
    assert sorted(policy["conditions"], key=json.dumps) == sorted([
        {"bucket": bucket},
        {"key": key},
        {"Content-Type": "image/png"},
        ["content-length-range", 1234, 1234],  # exactly the declared size
        {"x-amz-server-side-encryption": "AES256"},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": credential},
        {"x-amz-date": date},
    ], key=json.dumps)
    assert {name: value for name, value in fields.items() if name not in ("policy", "x-amz-signature")} == {
        "key": key, "Content-Type": "image/png", "x-amz-server-side-encryption": "AES256",
        "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential, "x-amz-date": date,
    }

    def signature(secret: str) -> str:
        request = AWSRequest()
        request.context["timestamp"] = date
        return SigV4Auth(Credentials("testing", secret), "s3", REGION).signature(fields["policy"], request)

    assert fields["x-amz-signature"] == signature("testing")
    assert fields["x-amz-signature"] != signature("other-secret")


async def test_readiness_heads_the_bucket(start_app, s3_env, s3, bucket):
    app = await start_app({**s3_env, "HEALTH_READY_CACHE_SECONDS": "0"})
    check = (await (await app.client.get("/health/ready")).json())["checks"]["media"]
    assert check["status"] == "ok" and check["critical"] is False and check["bucket"] == bucket
    s3.delete_bucket(Bucket=bucket)
    response = await app.client.get("/health/ready")
    assert response.status == 200 and (await response.json())["checks"]["media"]["status"] == "fail"


async def test_cleanup_removes_expired_pending_uploads_and_their_objects(app, caller, s3, bucket, s3_env):
    auth, sub = caller()
    expired = (await app.create(auth, "attachment"))
    assert (await upload(expired["upload"], JPEG)).status == 204
    fresh = (await app.create(auth, "attachment"))["media"]
    done = await app.ready(auth, "attachment")
    database = Path(s3_env["GATEWAY_DATA_DIR"]) / "gateway.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE media SET created_at = '2000-01-01T00:00:00.000Z' WHERE id IN (?, ?)",
                           (expired["media"]["id"], done["id"]))

    built = build(s3_env)  # as `python -m gateway media-cleanup` does
    command = next(c for c in built.registry.commands if c.name == "media-cleanup")
    assert await command.run(built.app, SimpleNamespace()) == 0

    assert (await app.client.get(f"/v1/media/{expired['media']['id']}", headers=auth)).status == 404
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=expired["upload"]["fields"]["key"])
    assert (await (await app.client.get(f"/v1/media/{fresh['id']}", headers=auth)).json())["status"] == "pending"
    assert (await (await app.client.get(f"/v1/media/{done['id']}", headers=auth)).json())["status"] == "ready"


async def test_deleting_an_account_deletes_every_object_under_its_prefixes(app, caller, s3, bucket):
    """Also for a caller without a profile, and also objects no record names (an upload whose record
    was cleaned up). The bucket is versioned as in production: the current versions go (delete
    markers), the noncurrent ones are left to the bucket's lifecycle rule (docs/infra.md)."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    auth, sub = caller()
    other, other_sub = caller()
    await app.ready(auth, "attachment")
    await app.ready(auth, "avatar")
    s3.put_object(Bucket=bucket, Key=f"u/{sub}/orphan.jpg", Body=JPEG)
    theirs = await app.ready(other, "attachment")

    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    for prefix in (f"u/{sub}/", f"avatars/{sub}/"):
        assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 0
        versions = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
        assert versions.get("DeleteMarkers") and all(not v["IsLatest"] for v in versions.get("Versions", []))
    assert s3.head_object(Bucket=bucket, Key=f"u/{other_sub}/{theirs['id']}.jpg")["ContentLength"] == len(JPEG)
    assert (await (await app.client.get("/v1/media", headers=auth)).json())["items"] == []


async def test_an_owners_objects_are_deleted_at_most_1000_keys_a_request(s3, bucket, s3_env):
    """DeleteObjects, "The request contains a list of up to 1000 keys" (boto3's copy of the S3 API
    Reference: https://boto3.amazonaws.com/v1/documentation/api/1.29.5/reference/services/s3/bucket/delete_objects.html)."""
    from plugins.media.backends.s3 import S3Store

    for i in range(1001):
        s3.put_object(Bucket=bucket, Key=f"u/owner-1001/m{i}.jpg", Body=b"x")
    store = S3Store(load(MediaSettings, s3_env))
    context = store.context(None)
    await anext(context)
    sizes = []
    store.client.meta.events.register("provide-client-params.s3.DeleteObjects",
                                      lambda params, **_: sizes.append(len(params["Delete"]["Objects"])))
    try:
        assert await store.delete_owner("owner-1001") == {"media objects": 1001}
    finally:
        await anext(context, None)
    assert sizes == [1000, 1]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="u/owner-1001/")["KeyCount"] == 0
