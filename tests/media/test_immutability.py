"""Objects are immutable and accounted for (docs/decisions/media-immutability.md): uploads land
under `incoming/`, never served; complete publishes a checked upload to its key; a form re-used
after complete or after a delete changes nothing that is served; `media-cleanup` removes every
object no record accounts for. On both stores: the local one and S3 (the moto server)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.media.helpers import JPEG, cleanup, download, upload

OTHER = JPEG[:-4] + b"evil"  # a valid JPEG start of the same size: only the policy's key stops it


@pytest.fixture(params=["local", "s3"])
def env(request, media_env) -> dict:
    return media_env if request.param == "local" else request.getfixturevalue("s3_env")


@pytest.fixture
async def app(start_app, env):
    return await start_app(env)


@pytest.fixture
def objects(leftovers):
    """`objects()`: every key the store holds."""
    return lambda: leftovers()[0]


async def test_a_form_reused_after_complete_changes_nothing_served(app, caller, objects, env):
    auth, sub = caller()
    created = await app.create(auth, "attachment")
    form = created["upload"]
    assert (await upload(form, JPEG)).status == 204
    media = await (await app.complete(auth, created["media"]["id"])).json()
    key = f"u/{sub}/{media['id']}.jpg"
    assert objects() == [key]

    await upload(form, OTHER)  # accepted by the store or not: it can only land under incoming/
    assert (await app.complete(auth, media["id"])).status == 200
    fetched = await (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).json()
    assert (await download(fetched["url"]))[:2] == (200, JPEG) and fetched["size"] == len(JPEG)

    await cleanup(env)
    assert objects() == [key]
    assert (await download(fetched["url"]))[:2] == (200, JPEG)


async def test_a_form_reused_after_delete_brings_nothing_back(app, caller, objects, env):
    auth, _ = caller()
    created = await app.create(auth, "avatar")
    form = created["upload"]
    assert (await upload(form, JPEG)).status == 204
    avatar = await (await app.complete(auth, created["media"]["id"])).json()
    profile = await (await app.client.patch("/v1/me", json={"avatar_media_id": avatar["id"]}, headers=auth)).json()
    public = profile["avatar"]["url"]
    assert (await download(public))[0] == 200
    assert (await app.client.delete(f"/v1/media/{avatar['id']}", headers=auth)).status == 204
    assert objects() == []

    await upload(form, OTHER)
    assert (await download(public))[0] in (403, 404)
    assert all(key.startswith("incoming/") for key in objects())
    await cleanup(env)
    assert objects() == []


async def test_cleanup_removes_objects_without_a_record_and_keeps_the_accounted(app, caller, objects, env, request):
    auth, sub = caller()
    ready = await app.ready(auth, "attachment")
    pending = await app.create(auth, "attachment")
    assert (await upload(pending["upload"], JPEG)).status == 204
    gone = await app.create(auth, "attachment")
    assert (await upload(gone["upload"], JPEG)).status == 204
    await app.client.delete(f"/v1/media/{gone['media']['id']}", headers=auth)
    stray = f"u/{sub}/strayobject.jpg"
    if "MEDIA_BUCKET" in env:
        request.getfixturevalue("s3").put_object(Bucket=env["MEDIA_BUCKET"], Key=stray, Body=JPEG)
    else:
        (Path(env["GATEWAY_DATA_DIR"]) / "media" / stray).write_bytes(JPEG)
    await upload(gone["upload"], JPEG)  # the deleted record's form, used again
    assert len(objects()) == 4

    await cleanup(env)
    assert objects() == sorted([f"u/{sub}/{ready['id']}.jpg", pending["upload"]["fields"]["key"]])
    assert (await app.complete(auth, pending["media"]["id"])).status == 200


async def test_the_local_store_never_serves_an_upload(start_app, media_env, caller):
    app = await start_app(media_env)
    auth, _ = caller()
    created = await app.create(auth, "avatar")
    assert (await upload(created["upload"], JPEG)).status == 204
    key = created["upload"]["fields"]["key"]
    assert (await app.client.get(f"/local-media/{key}")).status == 404
    assert (await app.client.get(f"/local-media/{key.removeprefix('incoming/')}")).status == 404


async def test_an_upload_replaced_while_it_is_checked_is_not_published(start_app, media_env, caller, monkeypatch):
    """The etag the check saw pins the publication: the local store's form posted again between the
    ranged read and the copy (S3: x-amz-copy-source-if-match, which moto ignores)."""
    from plugins.media.backends.local import LocalStore

    app = await start_app(media_env)
    auth, sub = caller()
    created = await app.create(auth, "attachment")
    assert (await upload(created["upload"], JPEG)).status == 204
    read_start = LocalStore.read_start

    async def racing(self, key, etag):
        start = await read_start(self, key, etag)
        assert (await upload(created["upload"], OTHER)).status == 204
        return start

    monkeypatch.setattr(LocalStore, "read_start", racing)
    refused = await app.complete(auth, created["media"]["id"])
    assert refused.status == 409 and "changed while it was checked" in (await refused.json())["detail"]
    monkeypatch.setattr(LocalStore, "read_start", read_start)
    completed = await (await app.complete(auth, created["media"]["id"])).json()
    assert (await download(completed["url"]))[:2] == (200, OTHER)  # what was checked the second time


async def test_a_delete_during_complete_leaves_nothing_published(start_app, media_env, caller, monkeypatch):
    from plugins.media.backends.local import LocalStore

    app = await start_app(media_env)
    auth, _ = caller()
    created = await app.create(auth, "attachment")
    assert (await upload(created["upload"], JPEG)).status == 204
    publish = LocalStore.publish

    async def racing(self, *args, **kwargs):
        await publish(self, *args, **kwargs)
        assert (await app.client.delete(f"/v1/media/{created['media']['id']}", headers=auth)).status == 204

    monkeypatch.setattr(LocalStore, "publish", racing)
    assert (await app.complete(auth, created["media"]["id"])).status == 404
    root = Path(media_env["GATEWAY_DATA_DIR"]) / "media"
    assert [p for p in root.rglob("*") if p.is_file() and p.name != ".secret"] == []


async def test_a_complete_during_delete_leaves_nothing_published(start_app, media_env, caller, monkeypatch):
    """The complete runs whole while the delete is between removing the published key (nothing there
    yet) and the upload: the object it publishes goes with the record."""
    from plugins.media.backends.local import LocalStore

    app = await start_app(media_env)
    auth, _ = caller()
    created = await app.create(auth, "attachment")
    assert (await upload(created["upload"], JPEG)).status == 204
    media_id, delete = created["media"]["id"], LocalStore.delete
    completions = []

    async def racing(self, key):
        await delete(self, key)
        if not key.startswith("incoming/") and not completions:
            completions.append(await app.complete(auth, media_id))

    monkeypatch.setattr(LocalStore, "delete", racing)
    assert (await app.client.delete(f"/v1/media/{media_id}", headers=auth)).status == 204
    assert [response.status for response in completions] == [200]
    assert (await app.client.get(f"/v1/media/{media_id}", headers=auth)).status == 404
    root = Path(media_env["GATEWAY_DATA_DIR"]) / "media"
    assert [p for p in root.rglob("*") if p.is_file() and p.name != ".secret"] == []
