"""Account deletion (issue 17, item 1), on MariaDB, memcached and the local store: DELETE /v1/me
removes every record of the caller in every plugin whether or not a profile exists, their stored
objects and their cached representations; it is recorded first and finished later if it stops
half-way (by the next call or `accounts-sweep`); what stays is an audit row without the subject."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.app import build
from plugins.media.backends.local import LocalStore
from tests.media.helpers import App as MediaApp

PROBLEM = "application/problem+json"


@pytest.fixture
async def app(start_app):
    return await start_app()


@pytest.fixture
def root(base_env) -> Path:
    return Path(base_env["GATEWAY_DATA_DIR"]) / "media"


def owned_files(root: Path, sub: str) -> list[str]:
    paths = (str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return sorted(path for path in paths if f"/{sub}/" in f"/{path}")


def rows(admin, sql: str, *params) -> list[dict]:
    with admin.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def deletions(admin, sub: str) -> list[dict]:
    digest = hashlib.sha256(sub.encode()).hexdigest()
    return rows(admin, "SELECT * FROM account_deletions WHERE subject_hash = %s ORDER BY created_at", digest)


async def test_a_caller_who_never_opened_a_profile_loses_media_records_and_objects(app, user, issuer, admin, root):
    sub, auth = user
    media = MediaApp(app.client, app.services)
    other = {"Authorization": f"Bearer {issuer.mint(sub + '-other')}"}
    await media.ready(auth, "attachment")
    await media.ready(auth, "avatar")
    pending = (await media.create(auth, "attachment"))["media"]
    theirs = await media.ready(other, "attachment")
    assert rows(admin, "SELECT id FROM profiles WHERE id = %s", sub) == []
    assert len(owned_files(root, sub)) == 4

    response = await app.client.delete("/v1/me", headers=auth)
    assert response.status == 204
    assert rows(admin, "SELECT id FROM media WHERE owner = %s", sub) == []
    assert owned_files(root, sub) == []
    assert (await app.client.get(f"/v1/media/{pending['id']}", headers=auth)).status == 404
    assert (await (await app.client.get("/v1/media", headers=auth)).json())["items"] == []
    assert (await app.client.get(f"/v1/media/{theirs['id']}", headers=other)).status == 200
    assert len(owned_files(root, sub + "-other")) == 2


async def test_the_profile_its_cached_views_and_the_avatar_go(app, user, issuer, admin, root):
    sub, auth = user
    viewer = {"Authorization": f"Bearer {issuer.mint(sub + '-viewer')}"}
    avatar = await MediaApp(app.client, app.services).ready(auth, "avatar")
    await app.client.patch("/v1/me", json={"avatar_media_id": avatar["id"], "bio": "mine"}, headers=auth)
    public = await (await app.client.get(f"/v1/users/{sub}", headers=viewer)).json()  # cached now
    assert public["avatar"]["media_id"] == avatar["id"]

    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert (await app.client.get(f"/v1/users/{sub}", headers=viewer)).status == 404
    assert await app.cache.backend.get(app.cache.key("profile", "default", sub)) is None
    assert rows(admin, "SELECT id FROM profiles WHERE id = %s", sub) == []
    assert owned_files(root, sub) == []
    fresh = await (await app.client.get("/v1/me", headers=auth)).json()
    assert (fresh["bio"], fresh["avatar"], fresh["version"]) == ("", None, 1)


async def test_a_third_party_plugins_rows_and_cache_entries_go_through_the_hook(start_app, user, notes_plugin, admin):
    sub, auth = user
    app = await start_app(GATEWAY_PLUGINS="health,auth,data,profiles,notes")
    note = await (await app.client.post("/v1/notes", json={"text": "private"}, headers=auth)).json()
    assert (await app.client.get(f"/v1/notes/{note['id']}", headers=auth)).status == 200  # cached now
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert (await app.client.get(f"/v1/notes/{note['id']}", headers=auth)).status == 404
    assert rows(admin, "SELECT id FROM notes WHERE owner = %s", sub) == []
    assert json.loads(deletions(admin, sub)[0]["counts"])["note"] == 1


async def test_the_audit_row_keeps_a_hash_the_time_and_counts_but_not_the_subject(app, user, admin):
    sub, auth = user
    await app.client.patch("/v1/me", json={"bio": "x"}, headers=auth)
    await MediaApp(app.client, app.services).ready(auth, "attachment")
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    [audit] = deletions(admin, sub)
    assert audit["status"] == "done" and audit["subject"] is None
    assert json.loads(audit["counts"]) == {"profile": 1, "media": 1, "media objects": 1, "media_quota": 1}
    assert audit["created_at"] <= audit["updated_at"]
    assert sub not in json.dumps(audit, default=str)


async def test_a_second_call_is_harmless(app, user, admin):
    sub, auth = user
    await app.client.get("/v1/me", headers=auth)
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    assert [json.loads(d["counts"]).get("profile") for d in deletions(admin, sub)] == [1, 0]


class Broken(Exception):
    pass


def failing_once(monkeypatch) -> None:
    """The local store's next deletion of an owner's objects fails, after the profile is gone: as
    if the process had died there. (Patched before the app starts: the hook is bound at setup.)"""
    original, calls = LocalStore.delete_owner, []

    async def fail_once(store, owner):
        calls.append(owner)
        if len(calls) == 1:
            raise Broken("the store went away")
        return await original(store, owner)

    monkeypatch.setattr(LocalStore, "delete_owner", fail_once)


async def test_a_deletion_that_stops_half_way_is_finished_by_the_next_call(start_app, user, admin, root, monkeypatch):
    sub, auth = user
    failing_once(monkeypatch)
    app = await start_app()
    await app.client.get("/v1/me", headers=auth)
    await MediaApp(app.client, app.services).ready(auth, "attachment")

    stopped = await app.client.delete("/v1/me", headers=auth)
    assert stopped.status == 503 and stopped.content_type == PROBLEM and "Retry-After" in stopped.headers
    [record] = deletions(admin, sub)
    assert record["status"] == "pending" and record["subject"] == sub  # the subject is kept until it is done
    assert len(rows(admin, "SELECT id FROM media WHERE owner = %s", sub)) == 1  # objects first, then records
    assert len(owned_files(root, sub)) == 2

    assert (await app.client.delete("/v1/me", headers=auth)).status == 204
    [record] = deletions(admin, sub)
    assert record["status"] == "done" and record["subject"] is None
    assert json.loads(record["counts"]) == {"profile": 1, "media": 1, "media objects": 1, "media_quota": 1}
    assert rows(admin, "SELECT id FROM media WHERE owner = %s", sub) == [] and owned_files(root, sub) == []


async def test_the_sweep_finishes_what_nobody_retried(start_app, user, admin, root, monkeypatch, data_env):
    sub, auth = user
    failing_once(monkeypatch)
    app = await start_app()
    await MediaApp(app.client, app.services).ready(auth, "attachment")
    assert (await app.client.delete("/v1/me", headers=auth)).status == 503

    built = build(data_env)  # as `python -m gateway accounts-sweep` does
    command = next(c for c in built.registry.commands if c.name == "accounts-sweep")
    assert await command.run(built.app, SimpleNamespace()) == 0
    [record] = deletions(admin, sub)
    assert record["status"] == "done" and record["subject"] is None
    assert rows(admin, "SELECT id FROM media WHERE owner = %s", sub) == [] and owned_files(root, sub) == []
