"""The resource layer through a resource another plugin defines (tests/data/notes.py): the owner
rule, cursor pagination, and list reads on the replica except for a caller who just wrote."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import gateway.loader

NOTES = EntryPoint(name="notes", value="tests.data.notes:plugin", group="gateway.plugins")


@pytest.fixture(autouse=True)
def notes_plugin(monkeypatch):
    real = gateway.loader.entry_points
    monkeypatch.setattr(gateway.loader, "entry_points", lambda group: [*real(group=group), NOTES])


@pytest.fixture
async def app(start_app):
    return await start_app(GATEWAY_PLUGINS="health,auth,data,notes")


async def test_someone_elses_row_is_404_for_every_method(app, user, issuer):
    _, auth = user
    other = {"Authorization": f"Bearer {issuer.mint('someone-else')}"}
    note = await (await app.client.post("/v1/notes", json={"body": "mine"}, headers=auth)).json()
    for method, body, status in [("GET", None, 404), ("PATCH", {"body": "theirs now"}, 404), ("DELETE", None, 204)]:
        response = await app.client.request(method, f"/v1/notes/{note['id']}", json=body, headers=other)
        assert response.status == status
    mine = await app.client.get(f"/v1/notes/{note['id']}", headers=auth)
    assert mine.status == 200 and (await mine.json())["body"] == "mine"


async def test_cursor_pages_walk_every_row_newest_first_once(app, user):
    _, auth = user
    created = [await (await app.client.post("/v1/notes", json={"body": f"n{i}"}, headers=auth)).json()
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
                                                                         scratch_database):
    sub, auth = user
    replica = scratch_database.rsplit("/", 1)[1]
    await start_app(GATEWAY_PLUGINS="health,auth,data,notes")  # its start-up migrates: the table exists
    with admin.cursor() as cursor:  # a replica that is, and stays, behind
        cursor.execute(f"CREATE TABLE `{replica}`.notes LIKE notes")
        cursor.execute(f"INSERT INTO `{replica}`.notes VALUES ('only-on-replica', 'reader', 'stale', "
                       "'2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z', 1)")
    app = await start_app(GATEWAY_PLUGINS="health,auth,data,notes", DATABASE_READ_URL=scratch_database)
    reader = {"Authorization": f"Bearer {issuer.mint('reader')}"}
    assert [n["id"] for n in (await (await app.client.get("/v1/notes", headers=reader)).json())["items"]] == \
        ["only-on-replica"]
    note = await (await app.client.post("/v1/notes", json={"body": "fresh"}, headers=auth)).json()
    listed = await (await app.client.get("/v1/notes", headers=auth)).json()
    assert [n["id"] for n in listed["items"]] == [note["id"]]
