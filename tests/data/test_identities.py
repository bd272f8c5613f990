"""Identities compare exactly (issue 17, item 3). MariaDB's `utf8mb4_bin` is a PAD SPACE collation,
so `'alice' = 'alice '` in SQL: a subject or a path id with a trailing space would reach alice's
rows, and be cached under a key of its own that goes stale. Subjects and ids with a trailing space,
over the key columns' 255 characters or with a lone surrogate are refused before any query."""
from __future__ import annotations

import pytest

from tests.media.helpers import App as MediaApp

PROBLEM = "application/problem+json"


@pytest.fixture
async def app(start_app):
    return await start_app()


def bearer(issuer, sub: str) -> dict:
    return {"Authorization": f"Bearer {issuer.mint(sub)}"}


async def test_the_database_itself_would_match_a_trailing_space(app, user, admin):
    """The premise: without the refusal, "alice " reads alice's row."""
    sub, auth = user
    await app.client.get("/v1/me", headers=auth)
    with admin.cursor() as cursor:
        cursor.execute("SELECT id FROM profiles WHERE id = %s", (sub + " ",))
        assert cursor.fetchone() == {"id": sub}


async def test_a_subject_with_a_trailing_space_reaches_nothing_of_the_subjects(app, user, issuer):
    sub, auth = user
    await app.client.patch("/v1/me", json={"bio": "alice's"}, headers=auth)
    media = await MediaApp(app.client, app.services).create(auth, purpose="attachment")
    padded = bearer(issuer, sub + " ")
    for method, path in [("GET", "/v1/me"), ("PATCH", "/v1/me"), ("DELETE", "/v1/me"), ("GET", "/v1/media"),
                         ("GET", f"/v1/media/{media['media']['id']}")]:
        response = await app.client.request(method, path, json={} if method == "PATCH" else None, headers=padded)
        assert response.status == 401 and response.content_type == PROBLEM, (method, path)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert (await (await app.client.get("/v1/me", headers=auth)).json())["bio"] == "alice's"


@pytest.mark.parametrize("sub", ["x" * 256, "lone \ud800 surrogate", "\udfff"])
async def test_subjects_the_key_columns_cannot_hold_are_401_not_500(app, issuer, sub):
    for method, path in [("GET", "/v1/me"), ("PATCH", "/v1/me"), ("GET", "/v1/media")]:
        response = await app.client.request(method, path, json={} if method == "PATCH" else None,
                                            headers=bearer(issuer, sub))
        assert response.status == 401 and response.content_type == PROBLEM, (method, path)


async def test_the_longest_subject_the_columns_hold_is_served(app, issuer):
    response = await app.client.get("/v1/me", headers=bearer(issuer, "y" * 255))
    assert response.status == 200 and (await response.json())["id"] == "y" * 255


async def test_a_path_id_with_a_trailing_space_is_404_and_never_cached(app, user, issuer):
    sub, auth = user
    viewer = bearer(issuer, sub + "-viewer")
    await app.client.get("/v1/me", headers=auth)
    for path in (f"/v1/users/{sub}%20", f"/v1/users/{sub}%20%20", f"/v1/users/{'z' * 256}"):
        response = await app.client.get(path, headers=viewer)
        assert response.status == 404 and response.content_type == PROBLEM, path
    assert await app.cache.backend.get(app.cache.key("profile", "public", sub + " ")) is None
    await app.client.patch("/v1/me", json={"bio": "changed"}, headers=auth)
    assert (await app.client.get(f"/v1/users/{sub}%20", headers=viewer)).status == 404
    assert (await (await app.client.get(f"/v1/users/{sub}", headers=viewer)).json())["bio"] == "changed"


async def test_a_media_id_with_a_trailing_space_is_404(app, user):
    _, auth = user
    media = (await MediaApp(app.client, app.services).create(auth, purpose="attachment"))["media"]
    assert (await app.client.get(f"/v1/media/{media['id']}", headers=auth)).status == 200
    for method in ("GET", "POST"):
        path = f"/v1/media/{media['id']}%20" + ("/complete" if method == "POST" else "")
        assert (await app.client.request(method, path, headers=auth)).status == 404, method
