"""The profile API of INTERFACE.md on MariaDB and memcached: creation from claims, ETag/304,
If-Match/412, validation that changes nothing, the public view, deletion."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from plugins.data import resources

PROBLEM = "application/problem+json"


@pytest.fixture
async def app(start_app):
    return await start_app()


async def test_first_get_creates_the_profile_from_the_token_and_later_gets_are_cache_hits(app, user):
    sub, auth = user
    first = await app.client.get("/v1/me", headers=auth)
    assert first.status == 200
    profile = await first.json()
    assert profile == {
        "id": sub, "username": sub.replace("user", "name"), "display_name": sub.replace("user", "name"), "bio": "",
        "locale": None, "avatar": None, "created_at": profile["created_at"], "updated_at": profile["created_at"],
        "version": 1,
    }
    reads, hits = app.profiles.reads, app.cache.hits
    again = await app.client.get("/v1/me", headers=auth)
    assert (again.status, await again.read()) == (200, await first.read())
    assert again.headers["ETag"] == first.headers["ETag"]
    assert app.profiles.reads == reads and app.cache.hits == hits + 1
    # the cache holds the rendered bytes behind the ETag: a hit sends them as they are
    stored = await app.cache.backend.get(app.cache.key("profile", "default", sub))
    assert stored == first.headers["ETag"].encode() + b"\n" + await first.read()


async def test_twenty_concurrent_first_calls_create_exactly_one_profile(app, user, admin):
    sub, auth = user
    responses = await asyncio.gather(*(app.client.get("/v1/me", headers=auth) for _ in range(20)))
    assert {r.status for r in responses} == {200}
    assert len({await r.read() for r in responses}) == 1
    with admin.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) AS n, MAX(version) AS v FROM profiles WHERE id = %s", (sub,))
        assert cursor.fetchone() == {"n": 1, "v": 1}


async def test_parallel_first_patches_of_new_users_never_fail(app, issuer):
    """20 new users, 5 first PATCHes each, all at once: InnoDB's gap locks make the first inserts
    deadlock (1213), which the transaction helper retries; no answer is a 5xx."""
    users = [{"Authorization": f"Bearer {issuer.mint(f'first-{uuid.uuid4().hex[:12]}')}"} for _ in range(20)]
    responses = await asyncio.gather(*(
        app.client.patch("/v1/me", json={"bio": f"writer {i}"}, headers=auth) for auth in users for i in range(5)
    ))
    assert sorted({r.status for r in responses}) == [200]
    for auth in users:
        profile = await (await app.client.get("/v1/me", headers=auth)).json()
        assert profile["bio"].startswith("writer ") and profile["version"] >= 2


async def test_if_none_match_gives_304_until_the_profile_changes(app, user):
    _, auth = user
    etag = (await app.client.get("/v1/me", headers=auth)).headers["ETag"]
    not_modified = await app.client.get("/v1/me", headers={**auth, "If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.headers["ETag"] == etag and await not_modified.read() == b""
    assert (await app.client.get("/v1/me", headers={**auth, "If-None-Match": f'"other", W/{etag}'})).status == 304
    await app.client.patch("/v1/me", json={"bio": "changed"}, headers=auth)
    changed = await app.client.get("/v1/me", headers={**auth, "If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_patch_changes_fields_and_bumps_the_version_and_if_match_guards_it(app, user):
    _, auth = user
    etag = (await app.client.get("/v1/me", headers=auth)).headers["ETag"]
    patched = await app.client.patch("/v1/me", json={"display_name": "Zoë", "bio": "hi\nthere", "locale": "zh-Hant-TW"},
                                     headers={**auth, "If-Match": etag})
    assert patched.status == 200
    body = await patched.json()
    assert (body["display_name"], body["bio"], body["locale"], body["version"]) == ("Zoë", "hi\nthere", "zh-Hant-TW", 2)
    assert patched.headers["ETag"] != etag

    stale = await app.client.patch("/v1/me", json={"bio": "lost"}, headers={**auth, "If-Match": etag})
    assert stale.status == 412 and stale.content_type == PROBLEM
    assert (await app.client.patch("/v1/me", json={"bio": "any"}, headers={**auth, "If-Match": "*"})).status == 200
    current = await (await app.client.get("/v1/me", headers=auth)).json()
    assert (current["bio"], current["version"]) == ("any", 3)
    unchanged = await app.client.patch("/v1/me", json={"bio": "any"}, headers=auth)  # no change, no new version
    assert (await unchanged.json())["version"] == 3


async def test_concurrent_patches_with_the_same_if_match_have_exactly_one_winner(app, user):
    _, auth = user
    etag = (await app.client.get("/v1/me", headers=auth)).headers["ETag"]
    responses = await asyncio.gather(*(
        app.client.patch("/v1/me", json={"display_name": f"writer {i}"}, headers={**auth, "If-Match": etag})
        for i in range(10)
    ))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [412] * 9
    winner = await next(r for r in responses if r.status == 200).json()
    current = await (await app.client.get("/v1/me", headers=auth)).json()
    assert current["display_name"] == winner["display_name"] and current["version"] == 2


async def test_a_write_between_a_patchs_read_and_its_write_is_not_overwritten_unseen(app, user, monkeypatch):
    """A PATCH reads the row without a lock and writes only if it is still the version read. Another
    write landing in between sends it to the locked path: If-Match is checked against the new
    version (412), or the change goes on top of it, and the answer is the row as stored. (The row
    is not left marked as contended here, so that both PATCHes race.)"""
    monkeypatch.setattr(resources, "CONTENDED_SECONDS", 0)
    _, auth = user
    etag = (await app.client.get("/v1/me", headers=auth)).headers["ETag"]
    repository = app.profiles.repository
    read = repository.find

    async def read_then_another_write(key, owner=None, **options):
        row = await read(key, owner, **options)
        repository.find = read
        await repository.update_where({"id": key}, {"bio": f"in between {row['version']}"})
        return row

    repository.find = read_then_another_write
    stale = await app.client.patch("/v1/me", json={"display_name": "late"}, headers={**auth, "If-Match": etag})
    assert stale.status == 412
    repository.find = read_then_another_write
    patched = await app.client.patch("/v1/me", json={"display_name": "late"}, headers=auth)
    current = await app.client.get("/v1/me", headers=auth)
    assert patched.status == 200 and await patched.json() == await current.json()
    assert patched.headers["ETag"] == current.headers["ETag"]
    body = await current.json()
    assert (body["display_name"], body["bio"], body["version"]) == ("late", "in between 2", 4)


async def test_concurrent_patches_of_one_row_each_land_as_one_version(app, user):
    """30 PATCHes of one row at once, each with a value of its own and no If-Match: every one is
    answered 200 and each became exactly one version (none lost, none applied twice)."""
    _, auth = user
    await app.client.get("/v1/me", headers=auth)
    responses = await asyncio.gather(*(
        app.client.patch("/v1/me", json={"display_name": f"writer {i}"}, headers=auth) for i in range(30)))
    assert [r.status for r in responses] == [200] * 30
    current = await (await app.client.get("/v1/me", headers=auth)).json()
    assert current["version"] == 31 and current["display_name"].startswith("writer ")


async def test_a_hot_rows_patch_holds_no_row_lock_between_its_statements(app, user, admin):
    """Writes to a row that recently lost a race go straight on top of it, each statement committed
    by itself: another writer is never kept waiting by a PATCH between its statements, and the
    answer is the row as stored after both."""
    sub, auth = user
    await app.client.get("/v1/me", headers=auth)
    profiles = app.profiles
    profiles._contended[sub] = float("inf")  # as after a lost race
    repository = profiles.repository
    write, lock = repository.update_where, repository.lock
    blocked = []

    def another_writer() -> None:
        with admin.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
            try:
                cursor.execute("UPDATE profiles SET bio = 'meanwhile', version = version + 1 WHERE id = %s", (sub,))
            except Exception as exc:  # 1205: a lock held across the PATCH's round trips
                blocked.append(exc)

    async def then_another_writer(step, *args, **options):
        repository.update_where, repository.lock = write, lock
        result = await step(*args, **options)
        another_writer()
        return result

    repository.update_where = lambda *a, **o: then_another_writer(write, *a, **o)
    repository.lock = lambda *a, **o: then_another_writer(lock, *a, **o)
    patched = await app.client.patch("/v1/me", json={"display_name": "hot"}, headers=auth)
    assert blocked == []
    body = await patched.json()
    assert (body["display_name"], body["bio"], body["version"]) == ("hot", "meanwhile", 3)
    assert body == await (await app.client.get("/v1/me", headers=auth)).json()


@pytest.mark.parametrize("body, fields", [
    ({"nickname": "x"}, {"nickname"}),
    ({"display_name": 5}, {"display_name"}),
    ({"display_name": ""}, {"display_name"}),
    ({"display_name": "   "}, {"display_name"}),
    ({"display_name": "x" * 51}, {"display_name"}),
    ({"display_name": "tab\there"}, {"display_name"}),
    ({"display_name": None}, {"display_name"}),
    ({"bio": "b" * 281}, {"bio"}),
    ({"locale": "en_US"}, {"locale"}),
    ({"locale": "e"}, {"locale"}),
    ({"locale": "en-"}, {"locale"}),
    ({"locale": "toolongtag"}, {"locale"}),
    ({"locale": 7}, {"locale"}),
    ({"avatar_media_id": "m-1"}, {"avatar_media_id"}),  # no media plugin loaded: nothing can vouch for it
    ({"display_name": "fine", "bio": 3, "locale": "english!"}, {"bio", "locale"}),
])
async def test_bad_patches_get_422_naming_each_field_and_change_nothing(app, user, body, fields):
    _, auth = user
    before = await (await app.client.get("/v1/me", headers=auth)).read()
    response = await app.client.patch("/v1/me", json=body, headers=auth)
    assert response.status == 422 and response.content_type == PROBLEM
    assert set((await response.json(content_type=PROBLEM))["errors"]) == fields
    assert await (await app.client.get("/v1/me", headers=auth)).read() == before


@pytest.mark.parametrize("data, content_type, status", [
    (json.dumps({"bio": "x"}), "text/plain", 415),
    ("{not json", "application/json", 400),
    ("[1, 2]", "application/json", 422),
])
async def test_bodies_that_are_not_a_json_object_change_nothing(app, user, data, content_type, status):
    _, auth = user
    before = await (await app.client.get("/v1/me", headers=auth)).read()
    response = await app.client.patch("/v1/me", data=data, headers={**auth, "Content-Type": content_type})
    assert response.status == status and response.content_type == PROBLEM
    assert await (await app.client.get("/v1/me", headers=auth)).read() == before


@pytest.mark.parametrize("locale", ["en", "en-GB", "zh-Hant-TW", "sr-Latn-RS", "es-419", "de-CH-1996", "x-private"])
async def test_well_formed_language_tags_are_accepted(app, user, locale):
    _, auth = user
    response = await app.client.patch("/v1/me", json={"locale": locale}, headers=auth)
    assert response.status == 200 and (await response.json())["locale"] == locale


async def test_the_public_profile_shows_public_fields_and_unknown_users_are_404(app, user, issuer):
    sub, auth = user
    other = {"Authorization": f"Bearer {issuer.mint(sub + '-other')}"}
    missing = await app.client.get(f"/v1/users/{sub}", headers=other)
    assert missing.status == 404 and missing.content_type == PROBLEM  # and now negatively cached
    await app.client.patch("/v1/me", json={"bio": "about me", "locale": "fr"}, headers=auth)  # creates, then patches
    public = await app.client.get(f"/v1/users/{sub}", headers=other)
    assert public.status == 200
    assert await public.json() == {"id": sub, "username": sub.replace("user", "name"),
                                   "display_name": sub.replace("user", "name"), "bio": "about me", "avatar": None}


async def test_delete_removes_the_profile_and_the_next_get_starts_afresh(app, user):
    sub, auth = user
    old = await app.client.patch("/v1/me", json={"bio": "old"}, headers=auth)
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert (await app.client.get(f"/v1/users/{sub}", headers=auth)).status == 404
    fresh = await app.client.get("/v1/me", headers={**auth, "If-None-Match": old.headers["ETag"]})
    assert fresh.status == 200 and (await fresh.json())["bio"] == ""


async def test_the_profile_routes_need_a_token(app):
    for method, path in [("GET", "/v1/me"), ("PATCH", "/v1/me"), ("DELETE", "/v1/me"), ("GET", "/v1/users/x")]:
        response = await app.client.request(method, path)
        assert response.status == 401 and "Bearer" in response.headers["WWW-Authenticate"]


async def test_readiness_shows_the_database_and_the_cache_with_its_counters(app, user):
    await app.client.get("/v1/me", headers=user[1])
    ready = await (await app.client.get("/health/ready")).json()
    assert ready["status"] == "ok"
    assert ready["checks"]["database"]["critical"] is True and ready["checks"]["database"]["status"] == "ok"
    cache = ready["checks"]["cache"]
    assert cache["critical"] is False and cache["status"] == "ok" and cache["backend"] == "memcached"
    assert {"hits", "misses", "fills", "lease_waits", "errors"} <= set(cache)
