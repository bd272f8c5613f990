"""The resource layer through a resource another plugin defines: the README's notes plugin,
installed from tests/fixtures/notes-plugin as a separate distribution. Create, the owner rule,
ETags with If-None-Match and If-Match, cursor pagination, its setting, and list reads on the
replica except for a caller who just wrote."""
from __future__ import annotations

import pytest

PLUGINS = "health,auth,data,notes"


@pytest.fixture
async def app(start_app, notes_plugin):
    return await start_app(GATEWAY_PLUGINS=PLUGINS)


async def test_create_read_patch_with_etags(app, user):
    _, auth = user
    created = await app.client.post("/v1/notes", json={"text": "first"}, headers=auth)
    assert created.status == 201
    note = await created.json()
    assert created.headers["Location"] == f"/v1/notes/{note['id']}" and note["version"] == 1
    read = await app.client.get(created.headers["Location"], headers=auth)
    etag = read.headers["ETag"]
    assert read.status == 200 and etag == created.headers["ETag"] and (await read.json())["text"] == "first"
    assert (await app.client.get(f"/v1/notes/{note['id']}", headers={**auth, "If-None-Match": etag})).status == 304
    changed = await app.client.patch(f"/v1/notes/{note['id']}", json={"text": "second"},
                                     headers={**auth, "If-Match": etag})
    assert changed.status == 200 and (await changed.json())["version"] == 2 and changed.headers["ETag"] != etag
    stale = await app.client.patch(f"/v1/notes/{note['id']}", json={"text": "third"},
                                   headers={**auth, "If-Match": etag})
    assert stale.status == 412
    assert (await (await app.client.get(f"/v1/notes/{note['id']}", headers=auth)).json())["text"] == "second"


async def test_the_plugins_setting_limits_the_text(start_app, user, notes_plugin):
    _, auth = user
    app = await start_app(GATEWAY_PLUGINS=PLUGINS, NOTES_MAX_LENGTH="5")
    refused = await app.client.post("/v1/notes", json={"text": "too long"}, headers=auth)
    assert refused.status == 422 and "text" in (await refused.json(content_type="application/problem+json"))["errors"]
    assert (await (await app.client.get("/v1/notes", headers=auth)).json())["items"] == []


async def test_someone_elses_row_is_404_for_every_method(app, user, issuer):
    _, auth = user
    other = {"Authorization": f"Bearer {issuer.mint('someone-else')}"}
    note = await (await app.client.post("/v1/notes", json={"text": "mine"}, headers=auth)).json()
    for method, body, status in [("GET", None, 404), ("PATCH", {"text": "theirs now"}, 404), ("DELETE", None, 204)]:
        response = await app.client.request(method, f"/v1/notes/{note['id']}", json=body, headers=other)
        assert response.status == status
    mine = await app.client.get(f"/v1/notes/{note['id']}", headers=auth)
    assert mine.status == 200 and (await mine.json())["text"] == "mine"


async def test_cursor_pages_walk_every_row_newest_first_once(app, user):
    _, auth = user
    created = [await (await app.client.post("/v1/notes", json={"text": f"n{i}"}, headers=auth)).json()
               for i in range(25)]
    seen, cursor = [], None
    while True:
        response = await app.client.get("/v1/notes", params={"limit": 10, **({"cursor": cursor} if cursor else {})},
                                        headers=auth)
        page = await response.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25
    assert [n["id"] for n in seen] == [n["id"] for n in sorted(created, key=lambda n: (n["created_at"], n["id"]),
                                                                reverse=True)]
    for bad in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": 101}):
        response = await app.client.get("/v1/notes", params=bad, headers=auth)
        assert response.status == 422 and set((await response.json(content_type="application/problem+json"))
                                              ["errors"]) == set(bad)


async def test_lists_use_the_replica_except_for_a_caller_who_just_wrote(start_app, user, issuer, admin,
                                                                         scratch_database, notes_plugin):
    sub, auth = user
    replica = scratch_database.rsplit("/", 1)[1]
    await start_app(GATEWAY_PLUGINS=PLUGINS)  # its start-up migrates: the table exists
    with admin.cursor() as cursor:  # a replica that is, and stays, behind
        cursor.execute(f"CREATE TABLE `{replica}`.notes LIKE notes")
        cursor.execute(f"INSERT INTO `{replica}`.notes VALUES ('only-on-replica', 'reader', 'stale', "
                       "'2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z', 1)")
    app = await start_app(GATEWAY_PLUGINS=PLUGINS, DATABASE_READ_URL=scratch_database)
    reader = {"Authorization": f"Bearer {issuer.mint('reader')}"}
    assert [n["id"] for n in (await (await app.client.get("/v1/notes", headers=reader)).json())["items"]] == \
        ["only-on-replica"]
    note = await (await app.client.post("/v1/notes", json={"text": "fresh"}, headers=auth)).json()
    listed = await (await app.client.get("/v1/notes", headers=auth)).json()
    assert [n["id"] for n in listed["items"]] == [note["id"]]
