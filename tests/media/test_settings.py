"""Media settings: CloudFront all or nothing, no local store in production, known content types."""
from __future__ import annotations

import pytest

from gateway.settings import SettingsError, load
from plugins.media.settings import MediaSettings


def problems(**environ) -> dict:
    with pytest.raises(SettingsError) as caught:
        load(MediaSettings, environ)
    return caught.value.problems


def test_defaults_are_the_local_store_with_the_documented_limits():
    settings = load(MediaSettings, {})
    assert settings.bucket is None and settings.cdn_url is None
    assert settings.avatar_types == ("image/jpeg", "image/png", "image/webp", "image/heic")
    assert settings.attachment_types[-2:] == ("video/mp4", "application/pdf")
    assert (settings.avatar_max_bytes, settings.attachment_max_bytes) == (10 << 20, 100 << 20)
    assert (settings.upload_expiry, settings.download_expiry, settings.pending_expiry) == (600, 3600, 86400)


def test_cloudfront_needs_all_three_variables_and_a_bucket():
    assert set(problems(MEDIA_BUCKET="b", MEDIA_CDN_URL="https://cdn.example.com")) == {
        "MEDIA_CDN_KEY_PAIR_ID", "MEDIA_CDN_PRIVATE_KEY_FILE"}
    assert "MEDIA_CDN_URL" in problems(MEDIA_CDN_URL="https://cdn.example.com", MEDIA_CDN_KEY_PAIR_ID="K",
                                       MEDIA_CDN_PRIVATE_KEY_FILE="/k.pem")


def test_production_refuses_the_local_store():
    assert "MEDIA_BUCKET" in problems(GATEWAY_ENV="production")
    assert load(MediaSettings, {"GATEWAY_ENV": "production", "MEDIA_BUCKET": "b"}).bucket == "b"


def test_types_need_a_known_extension_and_expiries_must_fit():
    assert "MEDIA_AVATAR_TYPES" in problems(MEDIA_AVATAR_TYPES="image/jpeg,text/html")
    assert "MEDIA_PENDING_EXPIRY_SECONDS" in problems(MEDIA_UPLOAD_EXPIRY_SECONDS="3600",
                                                      MEDIA_PENDING_EXPIRY_SECONDS="600")


def test_the_distribution_to_invalidate_needs_the_cdn_and_a_cloudfront_id():
    cdn = {"MEDIA_BUCKET": "b", "MEDIA_CDN_URL": "https://cdn.example.com", "MEDIA_CDN_KEY_PAIR_ID": "K",
           "MEDIA_CDN_PRIVATE_KEY_FILE": "/k.pem"}
    assert "MEDIA_CDN_DISTRIBUTION_ID" in problems(MEDIA_BUCKET="b", MEDIA_CDN_DISTRIBUTION_ID="E2QWRUHAPOMQZL")
    assert "MEDIA_CDN_DISTRIBUTION_ID" in problems(**cdn, MEDIA_CDN_DISTRIBUTION_ID="not/an id")
    settings = load(MediaSettings, {**cdn, "MEDIA_CDN_DISTRIBUTION_ID": "E2QWRUHAPOMQZL"})
    assert settings.cdn_distribution_id == "E2QWRUHAPOMQZL"


def test_the_local_stores_public_url_must_be_a_url():
    assert "MEDIA_LOCAL_PUBLIC_URL" in problems(MEDIA_LOCAL_PUBLIC_URL="media.example.com")
    settings = load(MediaSettings, {"MEDIA_LOCAL_PUBLIC_URL": "http://10.0.0.5:8080"})
    assert settings.local_public_url == "http://10.0.0.5:8080"


def test_no_media_is_larger_than_one_copy_object_request_takes():
    """Amazon S3 User Guide, "Copying an object using multipart upload"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/CopyingObjctsMPUapi.html): objects under
    5 GB are copied in a single operation, larger ones need the multipart copy API. Complete copies
    every upload to its key with one CopyObject, so no purpose accepts more."""
    assert load(MediaSettings, {"MEDIA_ATTACHMENT_MAX_BYTES": str(5 << 30)}).attachment_max_bytes == 5 << 30
    assert "MEDIA_ATTACHMENT_MAX_BYTES" in problems(MEDIA_ATTACHMENT_MAX_BYTES=str((5 << 30) + 1))
    assert "MEDIA_AVATAR_MAX_BYTES" in problems(MEDIA_AVATAR_MAX_BYTES=str((5 << 30) + 1))


def test_resumable_uploads_stay_within_s3s_multipart_limits():
    """Amazon S3 User Guide, "Amazon S3 multipart upload limits"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): parts of 5 MiB to 5 GiB
    (the last may be smaller), at most 10,000 parts an upload."""
    from plugins.media.settings import MAX_POST_BYTES, MIN_PART_BYTES

    assert MIN_PART_BYTES == 5 << 20
    for variable in ("MEDIA_MULTIPART_THRESHOLD_BYTES", "MEDIA_MULTIPART_PART_BYTES"):
        assert variable in problems(**{variable: str((5 << 20) - 1)})
        assert variable in problems(**{variable: str((5 << 30) + 1)})
    assert -(-MAX_POST_BYTES // MIN_PART_BYTES) <= 10000  # the largest media in the smallest parts
