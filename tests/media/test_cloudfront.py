"""Downloads through CloudFront: signed URLs with a canned policy that CloudFront's public key
verifies (and a tampered expiry does not), and avatars on the CDN's public path."""
from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.media.helpers import JPEG

CDN = "https://media.example.test"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"


@pytest.fixture(scope="module")
def cdn_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def app(start_app, s3_env, cdn_key, tmp_path):
    key_file = tmp_path / "cdn.pem"
    key_file.write_bytes(cdn_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return await start_app({**s3_env, "MEDIA_CDN_URL": CDN, "MEDIA_CDN_KEY_PAIR_ID": KEY_PAIR_ID,
                            "MEDIA_CDN_PRIVATE_KEY_FILE": str(key_file)})


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
