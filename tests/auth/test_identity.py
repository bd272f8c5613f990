"""Identity-pool OpenID tokens: the second issuer, its own JWKS, its rules, and the routing by `iss`.

moto's Cognito Identity gives a real identity pool and GetId (its GetOpenIdToken returns a random
string, not a JWT), so the tokens here are signed with a test key served as the identity issuer's
JWKS, as the other auth tests do for user pools. Hostile tokens for the new issuer are refused
before any RSA work unless they got as far as their signature."""
from __future__ import annotations

import time
import uuid

import boto3
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway import settings
from plugins.auth.identity import IDENTITY_ISSUER
from plugins.auth.issuer import IDENTITY_POOL as IDENTITY_POOL_LOCAL, LocalIssuer
from plugins.auth.settings import AuthSettings
from tests.auth.helpers import CLIENT, POOL, REGION, JwksServer, bearer, claims, jwk, sign
from tests.auth.test_local import gateway

IDENTITY_POOL = f"{REGION}:7c1d2e3f-0000-4000-8000-000000000abc"
IDENTITY_ID = f"{REGION}:0a1b2c3d-0000-4000-8000-00000000f00d"
COGNITO = {"AUTH_COGNITO_REGION": REGION, "AUTH_COGNITO_USER_POOL_ID": POOL, "AUTH_COGNITO_CLIENT_IDS": CLIENT}


def identity_claims(**overrides) -> dict:
    """GetOpenIdToken's claims for IDENTITY_POOL after a Twitter sign-in; None values remove a claim."""
    now = int(time.time())
    base = {"iss": IDENTITY_ISSUER, "sub": IDENTITY_ID, "aud": IDENTITY_POOL,
            "amr": ["authenticated", "api.twitter.com", "api.twitter.com:1234567"], "iat": now, "exp": now + 600}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


@pytest.fixture(scope="session")
def identity_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def identity_jwks(aiohttp_server, identity_key):
    """The identity issuer's JWKS (https://cognito-identity.amazonaws.com/.well-known/jwks_uri) stand-in."""
    server = JwksServer({"keys": [jwk(identity_key, "ik1")]})
    app = web.Application()
    app.router.add_get("/pool/.well-known/jwks.json", server.handle)
    server.server = await aiohttp_server(app)
    return server


@pytest.fixture
def identity_env(identity_jwks) -> dict:
    return {"GATEWAY_PLUGINS": "health,auth,probe", "AUTH_IDENTITY_POOL_ID": IDENTITY_POOL,
            "AUTH_IDENTITY_JWKS_URL": identity_jwks.url}


async def me(client, token: str):
    response = await client.get("/probe/me", headers=bearer(token))
    return response.status, await response.json()


async def test_an_identity_token_gives_the_identity_id(make_client, identity_env, identity_key):
    client = await make_client(identity_env)
    status, principal = await me(client, sign(identity_key, identity_claims(), kid="ik1"))
    assert status == 200
    assert principal == {"sub": IDENTITY_ID, "username": IDENTITY_ID, "groups": [], "scopes": [],
                         "client_id": IDENTITY_POOL, "token_use": "identity"}
    ready = await (await client.get("/health/ready")).json()
    assert ready["checks"]["identity-jwks"]["status"] == "ok" and "jwks" not in ready["checks"]


# name -> (forge(identity_key, user_pool_key, attacker_key), reaches the signature check)
HOSTILE = {
    "wrong aud": (lambda i, u, o: sign(i, identity_claims(aud=f"{REGION}:7c1d2e3f-0000-4000-8000-000000000bad"),
                                       kid="ik1"), False),
    "no aud": (lambda i, u, o: sign(i, identity_claims(aud=None), kid="ik1"), False),
    "amr unauthenticated (a guest)": (lambda i, u, o: sign(i, identity_claims(amr=["unauthenticated"]), kid="ik1"),
                                      False),
    "amr without authenticated": (lambda i, u, o: sign(i, identity_claims(amr=["api.twitter.com"]), kid="ik1"),
                                  False),
    "amr a string": (lambda i, u, o: sign(i, identity_claims(amr="authenticated"), kid="ik1"), False),
    "no amr": (lambda i, u, o: sign(i, identity_claims(amr=None), kid="ik1"), False),
    "expired": (lambda i, u, o: sign(i, identity_claims(iat=int(time.time()) - 1200, exp=int(time.time()) - 10),
                                     kid="ik1"), False),
    "wrong iss": (lambda i, u, o: sign(i, identity_claims(iss="https://cognito-identity.amazonaws.com/"), kid="ik1"),
                  False),
    "subject not an identity id": (lambda i, u, o: sign(i, identity_claims(sub="alice"), kid="ik1"), False),
    "user-pool token sent as an identity token": (lambda i, u, o: sign(u, claims(), kid="k1"), False),
    "user-pool claims under the identity issuer": (
        lambda i, u, o: sign(i, {**claims(), "iss": IDENTITY_ISSUER, "aud": IDENTITY_POOL,
                                 "amr": ["authenticated"], "sub": IDENTITY_ID}, kid="ik1"), False),
    "signed by another key with the right kid": (lambda i, u, o: sign(o, identity_claims(), kid="ik1"), True),
}


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_identity_token(name, make_client, identity_env, identity_jwks, identity_key, signing_key,
                                      other_key, clock, rsa_calls):
    forge, reaches_signature = HOSTILE[name]
    client = await make_client(identity_env)
    clock.advance(60)  # out of the penalty box: any fetch this token could cause would happen
    response = await client.get("/probe/me", headers=bearer(forge(identity_key, signing_key, other_key)))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="gateway", error="invalid_token"')
    assert len(identity_jwks.hits) == 1  # the start-up fetch only
    assert len(rsa_calls) == (1 if reaches_signature else 0)


async def test_unknown_kid_refetches_the_identity_jwks_once(make_client, identity_env, identity_jwks, identity_key,
                                                            clock, rsa_calls):
    client = await make_client(identity_env)
    clock.advance(60)
    for _ in range(3):
        assert (await me(client, sign(identity_key, identity_claims(), kid="ik2")))[0] == 401
    assert identity_jwks.hits == ["/pool/.well-known/jwks.json"] * 2  # start-up, then one refetch (penalty box)
    assert rsa_calls == []


async def test_identity_tokens_keep_verifying_while_their_jwks_is_down(make_client, identity_env, identity_jwks,
                                                                       identity_key):
    client = await make_client(identity_env)
    await identity_jwks.stop()
    assert (await me(client, sign(identity_key, identity_claims(jti="x"), kid="ik1")))[0] == 200


async def test_both_kinds_route_by_issuer_with_their_own_subjects(make_client, cognito_env, identity_env, identity_key,
                                                                  signing_key, rsa_calls):
    client = await make_client({**cognito_env, **identity_env, "AUTH_ACCEPT": "both"})
    user_pool_status, user = await me(client, sign(signing_key, claims()))
    identity_status, identity = await me(client, sign(identity_key, identity_claims(), kid="ik1"))
    assert (user_pool_status, identity_status) == (200, 200)
    assert (user["sub"], user["token_use"]) == (claims()["sub"], "access")
    assert (identity["sub"], identity["token_use"]) == (IDENTITY_ID, "identity")
    # each token met its own issuer's key only: a key of the other issuer was never tried
    assert len(rsa_calls) == 2
    ready = await (await client.get("/health/ready")).json()
    assert ready["checks"]["jwks"]["status"] == ready["checks"]["identity-jwks"]["status"] == "ok"


async def test_with_an_identity_pool_only_identity_tokens_are_taken_by_default(make_client, cognito_env, identity_env,
                                                                               identity_key, signing_key):
    client = await make_client({**cognito_env, **identity_env})
    assert (await me(client, sign(signing_key, claims())))[0] == 401
    assert (await me(client, sign(identity_key, identity_claims(), kid="ik1")))[0] == 200


async def test_user_pool_only_refuses_identity_tokens(make_client, cognito_env, identity_env, identity_key,
                                                      signing_key):
    client = await make_client({**cognito_env, **identity_env, "AUTH_ACCEPT": "user-pool"})
    assert (await me(client, sign(identity_key, identity_claims(), kid="ik1")))[0] == 401
    assert (await me(client, sign(signing_key, claims())))[0] == 200


async def test_local_issuer_mints_both_kinds(make_client, base_env):
    client = await make_client({"GATEWAY_PLUGINS": "health,auth,probe"})
    issuer = LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem")
    identity = f"local:{uuid.uuid4()}"
    status, principal = await me(client, issuer.mint_identity(identity, ("api.twitter.com",)))
    assert status == 200 and principal["sub"] == identity and principal["token_use"] == "identity"
    status, principal = await me(client, issuer.mint("alice"))
    assert status == 200 and principal["sub"] == "alice" and principal["token_use"] == "access"


async def test_local_identity_only(make_client, base_env):
    client = await make_client({"GATEWAY_PLUGINS": "health,auth,probe", "AUTH_ACCEPT": "identity"})
    issuer = LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem")
    assert (await me(client, issuer.mint("alice")))[0] == 401
    assert (await me(client, issuer.mint_identity(f"local:{uuid.uuid4()}")))[0] == 200


@pytest.fixture
def identity_pool(moto_endpoint):
    """A real identity pool in moto: the user pool and Twitter as providers, guests off."""
    cognito = boto3.client("cognito-identity", region_name="us-east-1", endpoint_url=moto_endpoint,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    pool = cognito.create_identity_pool(
        IdentityPoolName="gateway_test", AllowUnauthenticatedIdentities=False,
        SupportedLoginProviders={"api.twitter.com": "consumer-key;consumer-secret"},
        CognitoIdentityProviders=[{"ProviderName": f"cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool",
                                   "ClientId": "client123abc", "ServerSideTokenCheck": True}],
    )["IdentityPoolId"]
    yield cognito, pool
    cognito.delete_identity_pool(IdentityPoolId=pool)


async def test_a_twitter_user_gets_an_identity_and_calls_the_api(make_client, identity_pool, identity_jwks,
                                                                 identity_key):
    cognito, pool = identity_pool
    identity = cognito.get_id(IdentityPoolId=pool, Logins={"api.twitter.com": "twitter-token;twitter-secret"})
    identity_id = identity["IdentityId"]
    assert identity_id.startswith("us-east-1:")
    client = await make_client({"GATEWAY_PLUGINS": "health,auth,probe", "AUTH_IDENTITY_POOL_ID": pool,
                                "AUTH_IDENTITY_JWKS_URL": identity_jwks.url})
    token = sign(identity_key, identity_claims(sub=identity_id, aud=pool), kid="ik1")
    status, principal = await me(client, token)
    assert status == 200 and principal["sub"] == identity_id and principal["client_id"] == pool
    # the same token for a pool of someone else's is refused
    other = sign(identity_key, identity_claims(sub=identity_id), kid="ik1")
    assert (await me(client, other))[0] == 401


@pytest.mark.parametrize("env, variable", [
    ({"AUTH_IDENTITY_POOL_ID": "eu-west-1_Pool"}, "AUTH_IDENTITY_POOL_ID"),
    ({"AUTH_IDENTITY_POOL_ID": "eu-west-1:NOT-A-GUID"}, "AUTH_IDENTITY_POOL_ID"),
    ({"AUTH_ACCEPT": "everything"}, "AUTH_ACCEPT"),
    ({**COGNITO, "AUTH_ACCEPT": "identity"}, "AUTH_ACCEPT"),
    ({"AUTH_IDENTITY_POOL_ID": IDENTITY_POOL, "AUTH_ACCEPT": "both"}, "AUTH_ACCEPT"),
    ({"AUTH_IDENTITY_JWKS_URL": "http://127.0.0.1:1/jwks"}, "AUTH_IDENTITY_JWKS_URL"),
    ({"GATEWAY_ENV": "production", "AUTH_IDENTITY_POOL_ID": IDENTITY_POOL,
      "AUTH_IDENTITY_JWKS_URL": "http://127.0.0.1:1/jwks"}, "AUTH_IDENTITY_JWKS_URL"),
])
def test_bad_identity_settings(env, variable):
    with pytest.raises(settings.SettingsError) as error:
        settings.load(AuthSettings, env)
    assert variable in error.value.problems


def test_an_identity_pool_alone_is_enough_for_production():
    loaded = settings.load(AuthSettings, {"GATEWAY_ENV": "production", "AUTH_IDENTITY_POOL_ID": IDENTITY_POOL})
    assert loaded.identity_pool_id == IDENTITY_POOL and loaded.user_pool_id is None


def test_the_token_command_mints_identity_tokens(tmp_path):
    env = {"GATEWAY_ENV": "development", "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_PLUGINS": "health,auth"}
    identity = f"local:{uuid.uuid4()}"
    done = gateway("token", "--kind", "identity", "--sub", identity, "--providers", "api.twitter.com", "--ttl", "600",
                   env=env)
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), options={"verify_signature": False})
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("gateway-local-identity", identity, IDENTITY_POOL_LOCAL)
    assert claims["amr"] == ["authenticated", "api.twitter.com"] and claims["exp"] - claims["iat"] == 600
    refused = gateway("token", "--kind", "identity", "--sub", "alice", env=env)
    assert refused.returncode == 2 and "identity id" in refused.stderr
