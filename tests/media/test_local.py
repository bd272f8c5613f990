"""The media API on the embedded store (SQLite, local files): the whole flow as a phone does it,
and an upload endpoint that refuses everything its signed policy does not allow, writing nothing."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from plugins.media.backends.local import LocalStore
from tests.media.helpers import JPEG, download, upload

PROBLEM = "application/problem+json"


@pytest.fixture
async def app(start_app, media_env):
    return await start_app({**media_env, "MEDIA_AVATAR_MAX_BYTES": "2048"})


@pytest.fixture
def root(base_env) -> Path:
    return Path(base_env["GATEWAY_DATA_DIR"]) / "media"


def stored(root: Path) -> list[str]:
    """Every file the store holds but its secret."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".secret")


async def test_create_upload_complete_download(app, caller, root):
    auth, sub = caller()
    created = await app.create(auth)
    media, form = created["media"], created["upload"]
    assert media == {"id": media["id"], "purpose": "avatar", "status": "pending", "content_type": "image/jpeg",
                     "size": len(JPEG), "created_at": media["created_at"]}
    assert len(media["id"]) >= 22
    assert form["method"] == "POST" and form["url"] == str(app.client.make_url("/local-media"))
    assert form["fields"]["key"] == f"incoming/avatars/{sub}/{media['id']}.jpg"  # never served from there

    assert (await upload(form, JPEG)).status == 204
    assert stored(root) == [form["fields"]["key"], form["fields"]["key"] + ".meta"]
    completed = await app.complete(auth, media["id"])
    assert completed.status == 200
    key = f"avatars/{sub}/{media['id']}.jpg"
    assert stored(root) == [key, key + ".meta"]  # published: the upload moved to its key
    ready = await completed.json()
    assert ready["status"] == "ready" and ready["size"] == len(JPEG)

    fetched = await (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).json()
    status, body, content_type = await download(fetched["url"])
    assert (status, body, content_type) == (200, JPEG, "image/jpeg")
    assert fetched["url_expires_at"] > media["created_at"]


async def test_complete_before_upload_is_409_and_the_media_stays_pending(app, caller):
    auth, _ = caller()
    media = (await app.create(auth))["media"]
    refused = await app.complete(auth, media["id"])
    assert refused.status == 409 and refused.content_type == PROBLEM
    current = await (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).json()
    assert current["status"] == "pending" and "url" not in current


@pytest.mark.parametrize("body, field", [
    ({"purpose": "avatar", "content_type": "application/pdf", "size": 10}, "content_type"),
    ({"purpose": "avatar", "content_type": "image/jpeg", "size": 2049}, "size"),
    ({"purpose": "avatar", "content_type": "image/jpeg", "size": 0}, "size"),
    ({"purpose": "banner", "content_type": "image/jpeg", "size": 10}, "purpose"),
    ({"purpose": "avatar", "content_type": "image/jpeg", "size": 10, "key": "u/x/y.jpg"}, "key"),
])
async def test_bad_requests_are_422_with_the_field_and_store_nothing(app, caller, body, field):
    auth, _ = caller()
    response = await app.client.post("/v1/media", json=body, headers=auth)
    assert response.status == 422 and field in (await response.json())["errors"]
    assert (await (await app.client.get("/v1/media", headers=auth)).json())["items"] == []


async def refused(app, root, caller, change, status=403, data=JPEG, **create):
    auth, _ = caller()
    form = (await app.create(auth, **create))["upload"]
    fields = dict(form["fields"])
    change(fields)
    response = await upload(form, data, fields)
    assert response.status == status, await response.text()
    assert stored(root) == []
    return response


def last_changed(text: str) -> str:
    """The text with its last character always different (a fixed "0" left 1 signature in 16 as it was)."""
    return text[:-1] + ("1" if text.endswith("0") else "0")


async def test_the_upload_endpoint_refuses_what_the_policy_does_not_allow(app, root, caller):
    await refused(app, root, caller, lambda f: None, status=400, data=JPEG * 3, size=2048)  # over the limit
    await refused(app, root, caller, lambda f: None, status=400, data=b"")  # under the range
    await refused(app, root, caller, lambda f: None, status=400, size=len(JPEG) + 1)  # smaller than declared
    await refused(app, root, caller, lambda f: None, status=400, size=len(JPEG) - 1)  # larger than declared
    await refused(app, root, caller, lambda f: f.update({"Content-Type": "image/png"}))
    await refused(app, root, caller, lambda f: f.update({"key": f["key"].replace(".jpg", ".png")}))
    await refused(app, root, caller, lambda f: f.update({"key": "avatars/someone-else/x.jpg"}))
    await refused(app, root, caller, lambda f: f.update({"key": "../../escape.jpg"}))
    await refused(app, root, caller, lambda f: f.update({"signature": last_changed(f["signature"])}))
    await refused(app, root, caller, lambda f: f.update({"acl": "public-read"}))  # a field the policy lacks
    await refused(app, root, caller, lambda f: f.pop("policy"))


async def test_complete_checks_the_stored_object_again_and_removes_a_mismatch(app, root, caller):
    """Whatever reached the store (here: written behind the upload route's back) is measured again."""
    auth, _ = caller()
    created = await app.create(auth)
    key = created["upload"]["fields"]["key"]
    assert key.startswith("incoming/")
    assert (await upload(created["upload"], JPEG)).status == 204
    (root / key).write_bytes(JPEG + b"more")
    refused = await app.complete(auth, created["media"]["id"])
    assert refused.status == 409 and refused.content_type == PROBLEM
    assert f"{len(JPEG) + 4} bytes, not the {len(JPEG)} declared" in (await refused.json())["detail"]
    assert stored(root) == []


async def test_an_expired_policy_is_refused(app, root, caller, monkeypatch):
    auth, _ = caller()
    form = (await app.create(auth))["upload"]
    monkeypatch.setattr("plugins.media.backends.local.time", SimpleNamespace(time=lambda: time.time() + 601))
    assert (await upload(form, JPEG)).status == 403
    assert stored(root) == []


async def test_a_key_outside_the_store_is_refused_even_when_signed(app, root, caller, base_env):
    """Path traversal cannot come from a client (keys are in the signed policy), and even a key
    the gateway itself signed is refused unless it has the shape the gateway makes."""
    store = LocalStore(str(root), str(app.client.make_url("/")))
    async for _ in store.context(None):
        break
    url, fields = await store.presign_upload("u/../../escape.jpg", "image/jpeg", 2048, int(time.time()) + 60)
    response = await upload({"method": "POST", "url": url, "fields": fields}, JPEG)
    assert response.status == 403
    assert stored(root) == [] and not any(Path(base_env["GATEWAY_DATA_DIR"]).parent.rglob("escape.jpg"))
    assert (await app.client.get("/local-media/avatars/%2E%2E/gateway.db")).status in (403, 404)
    assert (await app.client.get("/local-media/avatars/x/..%2F..%2Fgateway.db")).status in (403, 404)


async def test_download_urls_need_their_signature_and_expire(app, caller, monkeypatch):
    auth, _ = caller()
    media = await app.ready(auth, "attachment")
    url = (await (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).json())["url"]
    assert (await download(url))[0] == 200
    assert (await download(url.replace("signature=", "signature=0")))[0] == 403
    assert (await download(url.split("?")[0]))[0] == 403
    expires = url.split("expires=")[1].split("&")[0]
    assert (await download(url.replace(f"expires={expires}", f"expires={int(expires) + 1}")))[0] == 403
    other = await app.ready(auth, "attachment")
    assert (await download(url.replace(media["id"], other["id"])))[0] == 403
    monkeypatch.setattr("plugins.media.backends.local.time", SimpleNamespace(time=lambda: time.time() + 3601))
    assert (await download(url))[0] == 403


async def test_another_users_media_answers_404_and_is_left_alone(app, caller):
    owner, _ = caller()
    stranger, _ = caller()
    media = await app.ready(owner)
    path = f"/v1/media/{media['id']}"
    assert (await app.client.get(path, headers=stranger)).status == 404
    assert (await app.client.post(f"{path}/complete", headers=stranger)).status == 404
    assert (await app.client.delete(path, headers=stranger)).status == 204  # as for any id that is not yours
    assert (await app.client.get(path, headers=owner)).status == 200
    assert (await (await app.client.get("/v1/media", headers=stranger)).json())["items"] == []
    patched = await app.client.patch("/v1/me", json={"avatar_media_id": media["id"]}, headers=stranger)
    assert patched.status == 422 and "avatar_media_id" in (await patched.json())["errors"]


async def test_the_list_is_the_callers_newest_first_in_pages(app, caller):
    auth, _ = caller()
    other, _ = caller()
    await app.create(other)
    created = [(await app.create(auth, "attachment"))["media"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = await (await app.client.get("/v1/media", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                                           headers=auth)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Newest first; records made in the same millisecond (created_at's precision) come in id order.
    assert seen == [media["id"] for media in sorted(created, key=lambda m: (m["created_at"], m["id"]), reverse=True)]


async def test_delete_removes_object_and_record_and_is_idempotent(app, caller, root):
    auth, _ = caller()
    media = await app.ready(auth, "attachment")
    assert stored(root) != []
    assert (await app.client.delete(f"/v1/media/{media['id']}", headers=auth)).status == 204
    assert stored(root) == []
    assert (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).status == 404
    assert (await app.client.delete(f"/v1/media/{media['id']}", headers=auth)).status == 204


async def test_avatar_set_shown_cleared_and_gone_with_its_media(app, caller):
    auth, sub = caller()
    viewer, _ = caller()
    pending = (await app.create(auth))["media"]
    attachment = await app.ready(auth, "attachment")
    for wrong in (pending["id"], attachment["id"], "no-such-media"):
        refused = await app.client.patch("/v1/me", json={"avatar_media_id": wrong}, headers=auth)
        assert refused.status == 422 and "avatar_media_id" in (await refused.json())["errors"]

    avatar = await app.ready(auth)
    profile = await (await app.client.patch("/v1/me", json={"avatar_media_id": avatar["id"]}, headers=auth)).json()
    assert profile["avatar"]["media_id"] == avatar["id"]
    public_path = f"/local-media/avatars/{sub}/{avatar['id']}.jpg"  # public, never expires
    assert profile["avatar"]["url"] == str(app.client.make_url(public_path))
    public = await (await app.client.get(f"/v1/users/{sub}", headers=viewer)).json()
    assert public["avatar"] == profile["avatar"]
    status, body, _ = await download(profile["avatar"]["url"])
    assert (status, body) == (200, JPEG)

    cleared = await (await app.client.patch("/v1/me", json={"avatar_media_id": None}, headers=auth)).json()
    assert cleared["avatar"] is None
    await app.client.patch("/v1/me", json={"avatar_media_id": avatar["id"]}, headers=auth)
    before = await app.client.get("/v1/me", headers=auth)  # cached now
    assert (await before.json())["avatar"]["media_id"] == avatar["id"]

    assert (await app.client.delete(f"/v1/media/{avatar['id']}", headers=auth)).status == 204
    after = await app.client.get("/v1/me", headers={**auth, "If-None-Match": before.headers["ETag"]})
    assert after.status == 200 and (await after.json())["avatar"] is None
    assert (await after.json())["version"] == (await before.json())["version"] + 1
    assert (await (await app.client.get(f"/v1/users/{sub}", headers=viewer)).json())["avatar"] is None


async def test_deleting_the_profile_deletes_the_callers_media(app, caller, root):
    auth, _ = caller()
    other, _ = caller()
    await app.client.get("/v1/me", headers=auth)
    mine = await app.ready(auth, "attachment")
    theirs = await app.ready(other, "attachment")
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert (await app.client.get(f"/v1/media/{mine['id']}", headers=auth)).status == 404
    assert (await app.client.get(f"/v1/media/{theirs['id']}", headers=other)).status == 200
    assert len(stored(root)) == 2  # the other user's object and its metadata


async def test_readiness_reports_the_store_as_a_non_critical_check(start_app, media_env, root):
    app = await start_app({**media_env, "HEALTH_READY_CACHE_SECONDS": "0"})
    body = await (await app.client.get("/health/ready")).json()
    assert body["checks"]["media"]["status"] == "ok" and body["checks"]["media"]["critical"] is False
    shutil.rmtree(root)
    root.write_text("not a directory")
    response = await app.client.get("/health/ready")
    assert response.status == 200 and (await response.json())["status"] == "degraded"


async def test_an_attachment_larger_than_the_json_body_limit_uploads(start_app, media_env, caller, root):
    """Uploads stream past GATEWAY_MAX_BODY_BYTES: the upload route declares its own, larger limit."""
    app = await start_app({**media_env, "GATEWAY_MAX_BODY_BYTES": "65536"})
    auth, _ = caller()
    data = JPEG + b"\0" * (3 * 65536)
    created = await app.create(auth, size=len(data), purpose="attachment")
    assert (await upload(created["upload"], data)).status == 204
    assert (await app.complete(auth, created["media"]["id"])).status == 200


async def test_an_upload_that_is_not_a_form_is_refused(app, root):
    assert (await app.client.post("/local-media")).status == 415
    broken = await app.client.post("/local-media", data=b"--x\r\nno headers",
                                   headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert broken.status == 400
    assert stored(root) == []


async def test_urls_come_from_the_configured_public_url_never_from_the_host_header(start_app, media_env, caller):
    auth, sub = caller()
    default = await start_app()
    forged = {**auth, "Host": "attacker.example", "X-Forwarded-Host": "attacker.example"}
    created = await default.create(forged)
    assert created["upload"]["url"] == str(default.client.make_url("/local-media"))  # GATEWAY_HOST:GATEWAY_PORT

    app = await start_app({**media_env, "MEDIA_LOCAL_PUBLIC_URL": "https://media.example.test/"})
    created = await app.create(forged)
    assert created["upload"]["url"] == "https://media.example.test/local-media"
    assert (await upload({**created["upload"], "url": str(app.client.make_url("/local-media"))}, JPEG)).status == 204
    media = await (await app.complete(forged, created["media"]["id"])).json()
    assert media["url"].startswith("https://media.example.test/local-media/avatars/")
    profile = await (await app.client.patch("/v1/me", json={"avatar_media_id": media["id"]}, headers=forged)).json()
    assert profile["avatar"]["url"] == f"https://media.example.test/local-media/avatars/{sub}/{media['id']}.jpg"
