"""End to end against the moto server's Cognito over HTTP: a real user pool, app client and user,
USER_PASSWORD_AUTH sign-in, and the tokens moto issues (the real AWS issuer form) at the gateway."""
from __future__ import annotations

import boto3
import pytest

from tests.auth.helpers import bearer

REGION = "us-east-1"
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def cognito(moto_endpoint):
    idp = boto3.client("cognito-idp", region_name=REGION, endpoint_url=moto_endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    pool = idp.create_user_pool(PoolName="gateway-test")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="mobile",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool, Username="alice", MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "alice@example.com"}])
    idp.admin_set_user_password(UserPoolId=pool, Username="alice", Password=PASSWORD, Permanent=True)
    idp.create_group(UserPoolId=pool, GroupName="admins")
    idp.admin_add_user_to_group(UserPoolId=pool, Username="alice", GroupName="admins")
    yield idp, pool, client_id
    idp.delete_user_pool(UserPoolId=pool)


def env(moto_endpoint: str, pool: str, client_id: str, **extra: str) -> dict:
    return {
        "GATEWAY_PLUGINS": "health,auth,probe",
        "AUTH_COGNITO_REGION": REGION,  # moto's issuer is https://cognito-idp.{region}.amazonaws.com/{pool}
        "AUTH_COGNITO_USER_POOL_ID": pool,
        "AUTH_COGNITO_CLIENT_IDS": client_id,
        "AUTH_JWKS_URL": f"{moto_endpoint}/{pool}/.well-known/jwks.json",
        **extra,
    }


async def test_sign_in_call_and_refresh(make_client, moto_endpoint, cognito):
    idp, pool, client_id = cognito
    tokens = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD})["AuthenticationResult"]
    client = await make_client(env(moto_endpoint, pool, client_id))
    assert (await (await client.get("/health/ready")).json())["checks"]["jwks"]["status"] == "ok"

    response = await client.get("/probe/admins", headers=bearer(tokens["AccessToken"]))
    assert response.status == 200
    principal = await response.json()
    assert principal["username"] == "alice"
    assert principal["groups"] == ["admins"]
    assert principal["client_id"] == client_id and principal["token_use"] == "access"
    assert principal["scopes"] == ["aws.cognito.signin.user.admin"]

    response = await client.get("/probe/me", headers=bearer(tokens["IdToken"]))
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    refreshed = idp.initiate_auth(ClientId=client_id, AuthFlow="REFRESH_TOKEN_AUTH",
                                  AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]})["AuthenticationResult"]
    assert refreshed["AccessToken"] != tokens["AccessToken"]
    response = await client.get("/probe/me", headers=bearer(refreshed["AccessToken"]))
    assert response.status == 200
    assert (await response.json())["sub"] == principal["sub"]


async def test_id_tokens_when_configured(make_client, moto_endpoint, cognito):
    idp, pool, client_id = cognito
    tokens = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD})["AuthenticationResult"]
    client = await make_client(env(moto_endpoint, pool, client_id, AUTH_TOKEN_USE="id"))
    response = await client.get("/probe/me", headers=bearer(tokens["IdToken"]))
    assert response.status == 200
    assert (await response.json())["username"] == "alice"
    assert (await client.get("/probe/me", headers=bearer(tokens["AccessToken"]))).status == 401


async def test_another_app_client_is_refused(make_client, moto_endpoint, cognito):
    idp, pool, client_id = cognito
    other = idp.create_user_pool_client(UserPoolId=pool, ClientName="web",
                                        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    tokens = idp.initiate_auth(ClientId=other, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD})["AuthenticationResult"]
    client = await make_client(env(moto_endpoint, pool, client_id))
    assert (await client.get("/probe/me", headers=bearer(tokens["AccessToken"]))).status == 401
