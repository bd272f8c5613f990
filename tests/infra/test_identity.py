"""The identity pool (identity.yaml) against what AWS documents and no linter checks: one test per
rule, each naming the page it comes from. The template is read as data; the gateway's own
constants for identity tokens are checked against the same pages."""
from __future__ import annotations

import re
from pathlib import Path

from plugins.auth.identity import IDENTITY_ID, IDENTITY_ID_MAX, IDENTITY_ISSUER, IDENTITY_JWKS_URL
from plugins.auth.settings import AuthSettings
from tests.infra.test_cloudformation import PRIMARY, STANDBY, load, only, plan, resources  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook-failover.md"


def identity() -> dict:
    return load("identity")


def pool() -> dict:
    return only(identity(), "AWS::Cognito::IdentityPool")


def longest(pattern: str) -> int:
    """The most characters an AllowedPattern of the form `[class]{m,n}` admits."""
    return int(re.fullmatch(r"\[[^\]]+\]\{\d+,(\d+)\}", pattern).group(1))


def test_guests_and_the_basic_flow_are_off():
    """AWS::Cognito::IdentityPool
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cognito-identitypool.html):
    AllowUnauthenticatedIdentities is required, AllowClassicFlow enables the basic flow. The API
    takes authenticated callers only, and the enhanced flow keeps role choice with the pool."""
    assert pool()["AllowUnauthenticatedIdentities"] is False
    assert pool()["AllowClassicFlow"] is False


def test_the_user_pool_is_a_provider_by_its_provider_name_and_app_client():
    """AWS::Cognito::IdentityPool CognitoIdentityProvider
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-cognito-identitypool-cognitoidentityprovider.html):
    ProviderName is `cognito-idp.<region>.amazonaws.com/<pool id>` (the user pool's ProviderName
    attribute), ClientId the app client; ServerSideTokenCheck makes the pool check that the user
    has not been signed out globally or deleted before it gives a token."""
    (provider,) = pool()["CognitoIdentityProviders"]
    assert provider == {"ProviderName": {"Fn::GetAtt": ["UserPool", "ProviderName"]},
                        "ClientId": {"Ref": "AppClient"}, "ServerSideTokenCheck": True}


def test_twitter_is_a_login_provider_in_the_documented_form_and_limits():
    """CreateIdentityPool (https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_CreateIdentityPool.html):
    Twitter's SupportedLoginProviders key is `api.twitter.com`; its value, the consumer key and
    secret joined by `;` ("Default provider mappings",
    https://docs.aws.amazon.com/cognito/latest/developerguide/provider-mappings.html: "app ID; app
    Secret"; the CDK's IdentityPoolTwitterLoginProvider does the same),
    is an IdentityProviderId: 1 to 128 characters of `[\\w.;_/-]`. The secret never echoes."""
    t = identity()
    providers = pool()["SupportedLoginProviders"]["Fn::If"]
    assert providers[0] == "HasTwitter" and providers[2] == {"Ref": "AWS::NoValue"}
    assert providers[1] == {"api.twitter.com": {"Fn::Sub": "${TwitterConsumerKey};${TwitterConsumerSecret}"}}
    key, secret = t["Parameters"]["TwitterConsumerKey"], t["Parameters"]["TwitterConsumerSecret"]
    assert secret["NoEcho"] is True and "NoEcho" not in key
    assert longest(key["AllowedPattern"]) + 1 + longest(secret["AllowedPattern"]) <= 128
    for parameter in (key, secret):
        allowed = parameter["AllowedPattern"].split("]")[0] + "]"
        assert set(re.findall(r"\\w|.", allowed[1:-1])) <= {"\\w", ".", "-"}  # within [\w.;_/-]
    assert t["Conditions"]["HasTwitter"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "TwitterConsumerKey"}, ""]}]}


def test_pool_name_fits_the_api_pattern():
    """IdentityPoolShortDescription
    (https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_IdentityPoolShortDescription.html):
    IdentityPoolName is 1 to 128 characters of `[\\w\\s+=,.@-]`; EnvName's pattern keeps it there."""
    t = identity()
    assert pool()["IdentityPoolName"] == {"Fn::Sub": "gateway-${EnvName}"}
    env = t["Parameters"]["EnvName"]["AllowedPattern"]
    assert env == "[a-z][a-z0-9-]{1,15}"
    longest_name = "gateway-" + "a" * 16
    assert len(longest_name) <= 128 and re.fullmatch(r"[\w\s+=,.@-]+", longest_name)


def test_the_authenticated_role_trusts_only_this_pools_authenticated_identities():
    """Amazon Cognito Developer Guide, "Role trust and permissions"
    (https://docs.aws.amazon.com/cognito/latest/developerguide/role-trust-and-permissions.html) and
    "Security best practices for identity pools"
    (https://docs.aws.amazon.com/cognito/latest/developerguide/identity-pools-security-best-practices.html):
    the federated principal cognito-identity.amazonaws.com may AssumeRoleWithWebIdentity only
    with `aud` equal to the pool id and `amr` naming `authenticated`; a role without the `aud`
    condition can be assumed from anyone's identity pool."""
    (role,) = resources(identity(), "AWS::IAM::Role").values()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Federated": "cognito-identity.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {"cognito-identity.amazonaws.com:aud": {"Ref": "IdentityPool"}},
        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"},
    }


def test_the_authenticated_role_grants_nothing():
    """What the app needs to call on AWS directly: GetId, GetOpenIdToken and
    GetCredentialsForIdentity are public APIs that need no credentials (GetOpenIdToken,
    https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_GetOpenIdToken.html: "This
    is a public API. You do not need any credentials to call this API."); everything else goes
    through this API with the OpenID token, media through presigned URLs. "IAM roles"
    (https://docs.aws.amazon.com/cognito/latest/developerguide/iam-roles.html): the console's
    default roles grant Mobile Analytics and Cognito Sync; this one grants no permission at all."""
    (role,) = resources(identity(), "AWS::IAM::Role").values()
    properties = role["Properties"]
    assert not {"Policies", "ManagedPolicyArns"} & set(properties)
    assert resources(identity(), "AWS::IAM::Policy") == {} and resources(identity(), "AWS::IAM::ManagedPolicy") == {}


def test_the_role_attachment_maps_authenticated_identities_only():
    """AWS::Cognito::IdentityPoolRoleAttachment
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cognito-identitypoolroleattachment.html):
    Roles' keys are "authenticated" or "unauthenticated"; RoleMappings choose roles per provider or
    by claims. There is no unauthenticated role, and no role mapping: no group needs AWS
    permissions (the API checks groups itself)."""
    attachment = only(identity(), "AWS::Cognito::IdentityPoolRoleAttachment")
    assert attachment["IdentityPoolId"] == {"Ref": "IdentityPool"}
    assert attachment["Roles"] == {"authenticated": {"Fn::GetAtt": ["AuthenticatedRole", "Arn"]}}
    assert "RoleMappings" not in attachment


def test_the_pool_id_is_an_output_the_gateway_setting_accepts():
    """CreateIdentityPool: IdentityPoolId is REGION:GUID, `[\\w-]+:[0-9a-f-]+`, at most 55
    characters; AUTH_IDENTITY_POOL_ID takes exactly the ids of a region."""
    assert identity()["Outputs"]["IdentityPoolId"]["Value"] == {"Ref": "IdentityPool"}
    pool_id = f"{PRIMARY}:12345678-90ab-cdef-1234-567890abcdef"
    assert len(pool_id) <= 55 and re.fullmatch(r"[\w-]+:[0-9a-f-]+", pool_id)
    assert AuthSettings().load({"AUTH_IDENTITY_POOL_ID": pool_id}).identity_pool_id == pool_id


def test_identity_token_constants_follow_the_api_reference():
    """GetOpenIdToken (https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_GetOpenIdToken.html):
    IdentityId is REGION:GUID, 1 to 55 characters of `[\\w-]+:[0-9a-f-]+`, and the token is valid
    10 minutes; "Role trust and permissions": the token's issuer is cognito-identity.amazonaws.com
    (https://docs.aws.amazon.com/cognito/latest/developerguide/role-trust-and-permissions.html)."""
    assert IDENTITY_ID.pattern == r"[\w-]+:[0-9a-f-]+" and IDENTITY_ID_MAX == 55
    assert IDENTITY_ISSUER == "https://cognito-identity.amazonaws.com"
    assert IDENTITY_JWKS_URL == f"{IDENTITY_ISSUER}/.well-known/jwks_uri"


def test_the_identity_pool_lives_in_the_primary_region_only(plan):  # noqa: F811
    """Dataset (https://docs.aws.amazon.com/cognitosync/latest/APIReference/API_Dataset.html):
    identity ids are GUIDs "unique within a region", so a second pool in the standby region would
    give every person a second id and split their data; the runbook says what the standby region
    does instead."""
    assert [region for region, name, _ in plan if name == "identity"] == [PRIMARY]
    runbook = RUNBOOK.read_text()
    section = runbook.split("## Identity pool", 1)[1].split("\n## ", 1)[0]
    assert STANDBY in section and "10 minutes" in section
