"""Downloads through CloudFront: signed URLs with a canned policy that CloudFront's public key
verifies (and a tampered expiry does not), and avatars on the CDN's public path."""
from __future__ import annotations

import base64
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from plugins.media.backends.s3 import invalidation_batches
from tests.data.conftest import eventually
from tests.media.helpers import JPEG

CDN = "https://media.example.test"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"


@pytest.fixture(scope="module")
def cdn_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def cdn_env(s3_env, cdn_key, tmp_path) -> dict:
    key_file = tmp_path / "cdn.pem"
    key_file.write_bytes(cdn_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return {**s3_env, "MEDIA_CDN_URL": CDN, "MEDIA_CDN_KEY_PAIR_ID": KEY_PAIR_ID,
            "MEDIA_CDN_PRIVATE_KEY_FILE": str(key_file)}


@pytest.fixture
async def app(start_app, cdn_env):
    return await start_app(cdn_env)


def verify(public_key, url: str, expires: str | None = None) -> None:
    """CloudFront's check: the canned policy for this resource and expiry, signed RSA-SHA1."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    resource = f"{parts.scheme}://{parts.netloc}{parts.path}"
    policy = ('{"Statement":[{"Resource":"%s","Condition":{"DateLessThan":{"AWS:EpochTime":%s}}}]}'
              % (resource, expires or query["Expires"]))
    signature = base64.b64decode(query["Signature"].replace("-", "+").replace("_", "=").replace("~", "/"))
    public_key.verify(signature, policy.encode(), padding.PKCS1v15(), hashes.SHA1())


async def test_downloads_are_cloudfront_urls_that_the_public_key_verifies(app, caller, cdn_key):
    auth, sub = caller()
    media = await app.ready(auth, "attachment")
    fetched = await (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).json()
    url = fetched["url"]
    assert url.startswith(f"{CDN}/u/{sub}/{media['id']}.jpg?Expires=")
    query = parse_qs(urlsplit(url).query)
    assert query["Key-Pair-Id"] == [KEY_PAIR_ID]
    assert abs(int(query["Expires"][0]) - (time.time() + 3600)) < 5
    assert not set(query["Signature"][0]) & set("+=/")  # CloudFront's URL-safe alphabet

    verify(cdn_key.public_key(), url)
    with pytest.raises(InvalidSignature):
        verify(cdn_key.public_key(), url, expires=str(int(query["Expires"][0]) + 3600))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidSignature):
        verify(other.public_key(), url)


async def test_avatars_are_on_the_cdns_public_path(app, caller):
    auth, sub = caller()
    avatar = await app.ready(auth, "avatar", JPEG)
    profile = await (await app.client.patch("/v1/me", json={"avatar_media_id": avatar["id"]}, headers=auth)).json()
    assert profile["avatar"] == {"media_id": avatar["id"], "url": f"{CDN}/avatars/{sub}/{avatar['id']}.jpg"}


def distribution(moto_endpoint) -> str:
    cloudfront = boto3.client("cloudfront", region_name="us-east-1", endpoint_url=moto_endpoint)
    origin = {"Id": "media", "DomainName": "media.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}
    created = cloudfront.create_distribution(DistributionConfig={
        "CallerReference": uuid.uuid4().hex, "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "media", "ViewerProtocolPolicy": "https-only",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"}})
    return created["Distribution"]["Id"]


async def test_deleting_an_account_invalidates_its_avatars_on_the_cdn(start_app, cdn_env, caller, moto_endpoint):
    distribution_id = distribution(moto_endpoint)
    app = await start_app({**cdn_env, "MEDIA_CDN_DISTRIBUTION_ID": distribution_id})
    auth, sub = caller()
    avatar = await app.ready(auth, "avatar", JPEG)
    await app.ready(auth, "attachment")  # signed URLs only: not on the public path, not invalidated
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204

    cloudfront = boto3.client("cloudfront", region_name="us-east-1", endpoint_url=moto_endpoint)

    def invalidated() -> list[str]:
        listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
        return [path for item in listed.get("Items", []) for path in cloudfront.get_invalidation(
            DistributionId=distribution_id, Id=item["Id"])["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]]

    assert await eventually(invalidated, what="an invalidation") == [f"/avatars/{sub}/{avatar['id']}.jpg"]


async def test_a_failed_invalidation_does_not_fail_the_deletion(start_app, cdn_env, caller, caplog):
    app = await start_app({**cdn_env, "MEDIA_CDN_DISTRIBUTION_ID": "NOSUCHDISTRIBUTION"})
    auth, _ = caller()
    await app.ready(auth, "avatar", JPEG)
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    await eventually(lambda: "CloudFront invalidation of 1 deleted avatars failed" in caplog.text, what="the warning")


def test_invalidations_name_each_path_and_stay_within_cloudfronts_limit():
    """Concurrent invalidation request maximum - Amazon CloudFront
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/InvalidationLimits.html): up to
    3,000 individually named files in progress per distribution, and only 15 wildcard paths."""
    batches = invalidation_batches([f"avatars/u{i}/m.jpg" for i in range(7001)])
    assert [len(batch) for batch in batches] == [3000, 3000, 1001]
    assert not any("*" in path for batch in batches for path in batch)
    assert batches[0][0] == "/avatars/u0/m.jpg"
