"""Complete reads an upload's leading bytes and accepts only a file of the declared type; downloads
carry the verified type, `nosniff`, and attachments a `Content-Disposition: attachment`. On both
stores: the local one and S3 (the moto server)."""
from __future__ import annotations

import pytest

from tests.media.helpers import HTML, SAMPLES, download_headers, upload

TYPES = ",".join(SAMPLES)


@pytest.fixture(params=["local", "s3"])
async def app(request, start_app, media_env):
    env = media_env if request.param == "local" else request.getfixturevalue("s3_env")
    return await start_app({**env, "MEDIA_ATTACHMENT_TYPES": TYPES})


async def uploaded(app, auth, content_type: str, data: bytes) -> str:
    created = await app.create(auth, "attachment", content_type, len(data))
    assert (await upload(created["upload"], data)).status == 204
    return created["media"]["id"]


@pytest.mark.parametrize("content_type", SAMPLES)
async def test_each_type_is_accepted_with_its_own_bytes_and_refused_with_another_types(app, caller, content_type):
    auth, _ = caller()
    accepted = await app.complete(auth, await uploaded(app, auth, content_type, SAMPLES[content_type]))
    assert accepted.status == 200, await accepted.text()

    other = next(name for name in SAMPLES if name != content_type and name.split("/")[0] == content_type.split("/")[0]
                 ) if content_type.startswith("image/") else "image/jpeg"
    media_id = await uploaded(app, auth, content_type, SAMPLES[other])
    refused = await app.complete(auth, media_id)
    problem = await refused.json()
    assert refused.status == 409 and f"not {content_type}" in problem["detail"] and other in problem["detail"]
    assert (await app.complete(auth, media_id)).status == 409  # removed: nothing to complete now
    assert "removed" in problem["detail"]


async def test_html_declared_as_an_image_is_refused(app, caller):
    auth, _ = caller()
    refused = await app.complete(auth, await uploaded(app, auth, "image/png", HTML))
    assert refused.status == 409 and "no type this gateway accepts" in (await refused.json())["detail"]


async def test_downloads_carry_the_verified_type_and_attachments_their_disposition(app, caller, request):
    auth, _ = caller()
    pdf = await app.complete(auth, await uploaded(app, auth, "application/pdf", SAMPLES["application/pdf"]))
    status, headers = await download_headers((await pdf.json())["url"])
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == "attachment"
    if request.node.callspec.params["app"] == "local":  # S3 cannot add it; CloudFront's security headers policy does
        assert headers["X-Content-Type-Options"] == "nosniff"
    avatar = await app.ready(auth, "avatar")
    status, headers = await download_headers(avatar["url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert headers.get("Content-Disposition", "inline") == "inline"
