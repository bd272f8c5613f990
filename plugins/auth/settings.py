"""Auth plugin settings: Cognito mode when a user pool or an identity pool is configured, the local
issuer otherwise; AUTH_ACCEPT says which token kinds are taken (`accepted()`)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema
from yarl import URL

from gateway.settings import CommaList, SettingsSchema

COGNITO = {
    "region": "AUTH_COGNITO_REGION",
    "user_pool_id": "AUTH_COGNITO_USER_POOL_ID",
    "client_ids": "AUTH_COGNITO_CLIENT_IDS",
}


KINDS = ("user-pool", "identity", "both")


def accepted(settings) -> tuple[bool, bool]:
    """(user-pool tokens, identity-pool tokens) taken. AUTH_ACCEPT's default: identity tokens alone
    once an identity pool is configured (the caller's id is then the identity id), else user-pool
    tokens; the local issuer takes both."""
    accept = settings.accept or ("both" if not (settings.user_pool_id or settings.identity_pool_id)
                                 else "identity" if settings.identity_pool_id else "user-pool")
    return accept != "identity", accept != "user-pool"


class AuthSettings(SettingsSchema):
    region = fields.Str(data_key="AUTH_COGNITO_REGION", load_default=None,
                        validate=validate.Regexp(r"^[a-z]{2}(-[a-z]+)+-\d+$", error="not an AWS region"))
    user_pool_id = fields.Str(data_key="AUTH_COGNITO_USER_POOL_ID", load_default=None,
                              validate=validate.Regexp(r"^[a-z]{2}(-[a-z]+)+-\d+_[0-9A-Za-z]+$",
                                                       error="not a user pool id (region_id)"))
    client_ids = CommaList(data_key="AUTH_COGNITO_CLIENT_IDS", load_default=())
    token_use = fields.Str(data_key="AUTH_TOKEN_USE", load_default="access",
                           validate=validate.OneOf(["access", "id", "any"]))
    jwks_url = fields.Str(data_key="AUTH_JWKS_URL", load_default=None)
    # An SSM parameter in this region holding a copy of the pool's JWKS (infra/deploy.sh writes it),
    # read when the JWKS URL cannot be reached: the standby region through a primary-region outage.
    jwks_parameter = fields.Str(data_key="AUTH_JWKS_PARAMETER", load_default=None)
    aws_region = fields.Str(data_key="AWS_REGION", load_default=None)  # botocore itself reads AWS_DEFAULT_REGION only
    local_key_file = fields.Str(data_key="AUTH_LOCAL_KEY_FILE", load_default=None)
    leeway_seconds = fields.Int(data_key="AUTH_LEEWAY_SECONDS", load_default=0, validate=validate.Range(0, 60))
    identity_pool_id = fields.Str(data_key="AUTH_IDENTITY_POOL_ID", load_default=None,
                                  validate=validate.Regexp(r"^[a-z]{2}(-[a-z]+)+-\d:[0-9a-f-]{36}$",
                                                           error="not an identity pool id (REGION:GUID)"))
    identity_jwks_url = fields.Str(data_key="AUTH_IDENTITY_JWKS_URL", load_default=None)
    accept = fields.Str(data_key="AUTH_ACCEPT", load_default=None, validate=validate.OneOf(KINDS))

    @validates_schema
    def consistent(self, data: dict, **_: object) -> None:
        configured = [name for name in COGNITO if data.get(name)]
        if configured and len(configured) < len(COGNITO):
            missing = [COGNITO[name] for name in COGNITO if name not in configured]
            raise ValidationError(
                {variable: [f"Cognito mode needs {', '.join(missing)} too (set all three, or none for the "
                            "local issuer)"] for variable in missing}
            )
        production = data["environment"] == "production"
        identity = data.get("identity_pool_id")
        accept = data.get("accept")
        if (configured or identity) and accept:
            if accept != "identity" and not configured:
                raise ValidationError(f"{accept} needs a user pool (AUTH_COGNITO_*)", "AUTH_ACCEPT")
            if accept != "user-pool" and not identity:
                raise ValidationError(f"{accept} needs AUTH_IDENTITY_POOL_ID", "AUTH_ACCEPT")
        if data.get("identity_jwks_url"):
            if not identity:
                raise ValidationError("only used with AUTH_IDENTITY_POOL_ID", "AUTH_IDENTITY_JWKS_URL")
            check_jwks_url(data["identity_jwks_url"], production, "AUTH_IDENTITY_JWKS_URL")
        if not configured:
            if production and not identity:
                raise ValidationError({variable: ["required under GATEWAY_ENV=production (or AUTH_IDENTITY_POOL_ID "
                                                  "alone): the local token issuer is for development only"]
                                       for variable in COGNITO.values()})
            if data.get("jwks_url"):
                raise ValidationError("only used with Cognito (AUTH_COGNITO_*)", "AUTH_JWKS_URL")
            return
        if not data["user_pool_id"].startswith(f"{data['region']}_"):
            raise ValidationError(f"a user pool in {data['region']} starts with {data['region']}_",
                                  "AUTH_COGNITO_USER_POOL_ID")
        if data.get("jwks_url"):
            check_jwks_url(data["jwks_url"], production)


def check_jwks_url(value: str, production: bool, variable: str = "AUTH_JWKS_URL") -> None:
    try:
        url = URL(value)
    except ValueError:
        raise ValidationError("not a URL", variable) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError("not an http(s) URL", variable)
    if production and not (url.scheme == "https" and url.host.endswith(".amazonaws.com")):
        raise ValidationError("under GATEWAY_ENV=production only an https URL on an amazonaws.com host", variable)
