"""What the protect route wrapper lets through, in Cognito mode against a JWKS server of our own."""
from __future__ import annotations

import json

from gateway.app import ACCESS_LOG
from tests.auth.helpers import CLIENT, POOL, bearer, claims, sign


async def test_valid_access_token_reaches_the_handler_with_its_principal(make_client, cognito_env, signing_key):
    client = await make_client(cognito_env)
    response = await client.get("/probe/me", headers=bearer(sign(signing_key, claims())))
    assert response.status == 200
    assert await response.json() == {
        "sub": "9f1c2d3e-0000-4000-8000-000000000001", "username": "alice", "groups": [],
        "scopes": ["aws.cognito.signin.user.admin"], "client_id": CLIENT, "token_use": "access",
    }


async def test_no_credentials_is_a_bare_challenge(make_client, cognito_env):
    client = await make_client(cognito_env)
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await client.get("/probe/me", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
        assert response.content_type == "application/problem+json"


async def test_public_unknown_and_wrong_method_routes_are_not_challenged(make_client, cognito_env):
    client = await make_client(cognito_env)
    assert (await client.get("/probe/open")).status == 200
    assert (await client.get("/health/live")).status == 200
    assert (await client.get("/openapi.json")).status == 200
    assert (await client.get("/nowhere")).status == 404
    assert (await client.post("/probe/me")).status == 405


async def test_groups_any_of_and_scopes_all_of(make_client, cognito_env, signing_key):
    client = await make_client(cognito_env)
    ops = sign(signing_key, claims(**{"cognito:groups": ["ops"]}))
    nobody = sign(signing_key, claims(**{"cognito:groups": ["users"]}))
    assert (await client.get("/probe/admins", headers=bearer(ops))).status == 200
    assert (await client.get("/probe/admins", headers=bearer(nobody))).status == 403

    both = sign(signing_key, claims(scope="probe/read probe/write openid"))
    one = sign(signing_key, claims(scope="probe/read"))
    assert (await client.get("/probe/scoped", headers=bearer(both))).status == 200
    response = await client.get("/probe/scoped", headers=bearer(one))
    assert response.status == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_federated_user_passes_like_any_other(make_client, cognito_env, signing_key):
    """A user who signed in through Google: prefixed username, the pool's automatic provider group
    and an identities claim (id tokens carry it; here both kinds are accepted)."""
    federated = claims(**{
        "username": "google_1234567890",
        "cognito:groups": [f"{POOL}_Google", "admins"],
        "identities": [{"userId": "1234567890", "providerName": "Google", "providerType": "Google",
                        "issuer": None, "primary": "true", "dateCreated": "1700000000000"}],
    })
    client = await make_client({**cognito_env, "AUTH_TOKEN_USE": "any"})
    response = await client.get("/probe/admins", headers=bearer(sign(signing_key, federated)))
    assert response.status == 200
    body = await response.json()
    assert body["username"] == "google_1234567890"
    assert body["groups"] == [f"{POOL}_Google", "admins"]

    id_token = claims(token_use="id", client_id=None, aud=CLIENT, scope=None, username=None,
                      **{"cognito:username": "google_1234567890", "identities": federated["identities"]})
    response = await client.get("/probe/me", headers=bearer(sign(signing_key, id_token)))
    assert response.status == 200
    assert (await response.json())["username"] == "google_1234567890"


async def test_the_access_log_names_the_caller(make_client, cognito_env, signing_key, capfd):
    client = await make_client(cognito_env)
    await client.get("/probe/me", headers=bearer(sign(signing_key, claims(sub="user-42"))))
    client.app[ACCESS_LOG].flush()  # rather than waiting for its timer
    line = next(json.loads(line) for line in capfd.readouterr().out.splitlines() if "/probe/me" in line)
    assert line["sub"] == "user-42"


async def test_openapi_documents_the_bearer_scheme(make_client, cognito_env):
    document = await (await make_client(cognito_env)).get("/openapi.json")
    spec = await document.json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert spec["paths"]["/probe/scoped"]["get"]["security"] == [{"bearerAuth": ["probe/read", "probe/write"]}]
    assert "security" not in spec["paths"]["/probe/open"]["get"]
