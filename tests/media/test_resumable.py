"""Resumable uploads (S3 multipart) on both stores, the local one and S3 (the moto server, which
implements multipart uploads): parts, a crash, the list of what was received, the rest, complete
with the parts' ETags; wrong ETags, parts out of range and of the wrong size refused; abort and
cleanup leave nothing."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from plugins.data.api import DATABASE
from tests.media.helpers import SAMPLES, cleanup, download, put_part

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part
DATA = SAMPLES["video/mp4"] + bytes(4 * PART + 1000 - len(SAMPLES["video/mp4"]))  # five parts, the last short
PARTS = [DATA[i:i + PART] for i in range(0, len(DATA), PART)]
VIDEO = {"purpose": "attachment", "content_type": "video/mp4", "size": len(DATA)}


@pytest.fixture(params=["local", "s3"])
def env(request, media_env) -> dict:
    base = media_env if request.param == "local" else request.getfixturevalue("s3_env")
    return {**base, "MEDIA_MULTIPART_THRESHOLD_BYTES": str(PART), "MEDIA_MULTIPART_PART_BYTES": str(PART)}


@pytest.fixture
async def app(start_app, env):
    return await start_app(env)


async def start(app, auth) -> dict:
    response = await app.client.post("/v1/media", json=VIDEO, headers=auth)
    assert response.status == 201, await response.text()
    return await response.json()


async def put_parts(urls: list[dict], numbers) -> dict[int, str]:
    etags = {}
    for item in urls:
        if item["part_number"] in numbers:
            status, etag = await put_part(item["url"], PARTS[item["part_number"] - 1])
            assert status == 200 and etag
            etags[item["part_number"]] = etag
    return etags


def completion(etags: dict[int, str]) -> dict:
    return {"parts": [{"part_number": n, "etag": etags[n]} for n in sorted(etags)]}


async def test_parts_a_crash_the_received_list_the_rest_and_complete(app, caller, leftovers):
    auth, sub = caller()
    created = await start(app, auth)
    media, upload = created["media"], created["upload"]
    assert (upload["method"], upload["part_size"], upload["parts"]) == ("PUT", PART, 5)
    assert [item["part_number"] for item in upload["urls"]] == [1, 2, 3, 4, 5]
    first = await put_parts(upload["urls"], {1, 2, 3})

    # The app crashed and restarted: it asks what arrived, and fresh URLs for the rest.
    received = await (await app.client.get(f"/v1/media/{media['id']}/parts", headers=auth)).json()
    assert received["part_size"] == PART and received["parts"] == 5
    assert [(p["part_number"], p["etag"], p["size"]) for p in received["received"]] == [
        (n, first[n], PART) for n in (1, 2, 3)]
    fresh = await (await app.client.post(f"/v1/media/{media['id']}/parts", json={"part_numbers": [5, 4]},
                                         headers=auth)).json()
    assert [item["part_number"] for item in fresh["urls"]] == [4, 5]
    rest = await put_parts(fresh["urls"], {4, 5})

    assert (await app.complete(auth, media["id"])).status == 409  # a resumable upload names its parts
    completed = await app.client.post(f"/v1/media/{media['id']}/parts/complete", json=completion({**first, **rest}),
                                      headers=auth)
    assert completed.status == 200, await completed.text()
    ready = await completed.json()
    assert ready["status"] == "ready" and ready["size"] == len(DATA)
    status, body, content_type = await download(ready["url"])
    assert (status, body == DATA, content_type) == (200, True, "video/mp4")
    assert leftovers() == ([f"u/{sub}/{media['id']}.mp4"], [])


async def test_a_wrong_etag_or_a_missing_part_is_refused_and_the_session_kept(app, caller):
    auth, _ = caller()
    created = await start(app, auth)
    path = f"/v1/media/{created['media']['id']}/parts/complete"
    etags = await put_parts(created["upload"]["urls"], {1, 2, 3, 4})
    missing = await app.client.post(path, json=completion({**etags, 5: '"0" '}), headers=auth)
    assert missing.status == 409 and "Part 5 has not been received" in (await missing.json())["detail"]
    etags.update(await put_parts(created["upload"]["urls"], {5}))
    wrong = await app.client.post(path, json=completion({**etags, 2: etags[1]}), headers=auth)
    assert wrong.status == 409 and "Part 2's ETag" in (await wrong.json())["detail"]
    unordered = {"parts": list(reversed(completion(etags)["parts"]))}
    assert (await app.client.post(path, json=unordered, headers=auth)).status == 422
    assert (await app.client.post(path, json=completion(etags), headers=auth)).status == 200


async def test_a_part_out_of_range_is_refused(app, caller, env):
    auth, _ = caller()
    created = await start(app, auth)
    path = f"/v1/media/{created['media']['id']}/parts"
    for numbers in ([6], [0], [1, 10001]):
        refused = await app.client.post(path, json={"part_numbers": numbers}, headers=auth)
        assert refused.status == 422 and "part_numbers" in (await refused.json())["errors"]
    assert (await app.client.post(path, json={"part_numbers": list(range(1, 102))}, headers=auth)).status == 422
    if "MEDIA_BUCKET" not in env:  # the local store checks what S3 leaves to complete
        url = created["upload"]["urls"][4]["url"]
        assert (await put_part(url.replace("/5?", "/6?"), PARTS[4]))[0] == 403  # not what was signed
        assert (await put_part(url, PARTS[4] + b"x"))[0] == 400
        assert (await put_part(created["upload"]["urls"][0]["url"], PARTS[0][:-1]))[0] == 400


async def test_a_part_of_the_wrong_size_is_refused_at_complete(app, caller, env):
    """S3 cannot pin a part's size in its URL: complete checks every part's size."""
    if "MEDIA_BUCKET" not in env:
        pytest.skip("the local store refuses such a part when it is uploaded (test_a_part_out_of_range_is_refused)")
    auth, _ = caller()
    created = await start(app, auth)
    etags = await put_parts(created["upload"]["urls"], {1, 2, 3, 4})
    status, etags[5] = await put_part(created["upload"]["urls"][4]["url"], PARTS[4] + b"extra")
    refused = await app.client.post(f"/v1/media/{created['media']['id']}/parts/complete", json=completion(etags),
                                    headers=auth)
    assert refused.status == 409 and "Part 5 has 1005 bytes, not 1000" in (await refused.json())["detail"]


async def test_abort_leaves_nothing(app, caller, leftovers):
    auth, _ = caller()
    created = await start(app, auth)
    await put_parts(created["upload"]["urls"], {1, 2})
    assert leftovers()[1] != []
    assert (await app.client.delete(f"/v1/media/{created['media']['id']}", headers=auth)).status == 204
    assert leftovers() == ([], [])
    # A URL handed out before is dead: S3 answers NoSuchUpload (404; moto answers 500), the local store 404.
    assert (await put_part(created["upload"]["urls"][2]["url"], PARTS[2]))[0] in (404, 500)
    assert leftovers() == ([], [])
    assert (await app.client.get(f"/v1/media/{created['media']['id']}/parts", headers=auth)).status == 404


async def test_small_uploads_stay_single_posts(app, caller):
    auth, _ = caller()
    created = await app.create(auth, "attachment", "image/jpeg", PART)
    assert created["upload"]["method"] == "POST"
    parts = await app.client.get(f"/v1/media/{created['media']['id']}/parts", headers=auth)
    assert parts.status == 409


async def test_cleanup_aborts_expired_sessions_and_sessions_without_a_record(app, caller, env, leftovers, monkeypatch):
    auth, _ = caller()
    expired, orphaned, kept = [(await start(app, auth))["media"]["id"] for _ in range(3)]
    async with app.services[DATABASE].transaction() as tx:
        await tx.execute("UPDATE media SET created_at = ? WHERE id = ?", ("2000-01-01T00:00:00.000Z", expired))
        # a session no record names (its record gone, as after a crash between deletions)
        await tx.execute("DELETE FROM media WHERE id = ?", (orphaned,))
    assert len(leftovers()[1]) == 3

    await cleanup(env)
    if "MEDIA_BUCKET" not in env:  # moto reports every upload as initiated in 2010
        assert len(leftovers()[1]) == 2  # the expired one; a young one without a record may have it on its way
    later = time.time() + 3600
    monkeypatch.setattr("plugins.media.cleanup.time", SimpleNamespace(time=lambda: later))
    await cleanup(env)
    assert len(leftovers()[1]) == 1
    assert (await app.client.get(f"/v1/media/{kept}/parts", headers=auth)).status == 200
    assert (await app.client.get(f"/v1/media/{expired}/parts", headers=auth)).status == 404
