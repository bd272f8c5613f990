"""Auth plugin: bearer tokens from Cognito, a user pool's or an identity pool's (or, with no Cognito
configured, from a local issuer), verified as strictly as aws-jwt-verify and then some; provides
`principal(request)` as PRINCIPAL (plugins/auth/api.py, the module other plugins import).

jwt.py parses strictly, jwks.py holds the signing keys, verifier.py checks claims and signatures and
caches the outcome (identity.py: the identity pool's rules), protect.py enforces each route's
declaration, issuer.py is the local issuer.
"""
import os

from gateway.plugin import Plugin, SetupContext

from plugins.auth import cli
from plugins.auth.identity import IDENTITY_JWKS_URL, IdentityVerifier
from plugins.auth.issuer import CLIENT_ID, IDENTITY_ISSUER, IDENTITY_POOL, ISSUER
from plugins.auth.jwks import RemoteKeySet, ssm_copy
from plugins.auth.protect import ORDER, protect
from plugins.auth.api import PRINCIPAL
from plugins.auth.principal import principal
from plugins.auth.routes import LocalJwks
from plugins.auth.settings import AuthSettings, accepted
from plugins.auth.verifier import Verifier

def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    key_file = settings.local_key_file or os.path.join(ctx.core.data_dir, "dev-signing-key.pem")
    user_pool, identity = accepted(settings)
    verifiers = []
    if settings.user_pool_id or settings.identity_pool_id:
        def remote(name: str, url: str, copy=None) -> RemoteKeySet:
            keys = RemoteKeySet(url, copy)
            ctx.cleanup_ctx(keys.context)
            ctx.readiness_check(name, keys.probe)
            return keys

        if user_pool:
            issuer = f"https://cognito-idp.{settings.region}.amazonaws.com/{settings.user_pool_id}"
            pool_keys = remote("jwks", settings.jwks_url or f"{issuer}/.well-known/jwks.json",
                               ssm_copy(settings.jwks_parameter, settings.aws_region) if settings.jwks_parameter else None)
            ctx.counter("jwks_refreshes", "JWKS fetches begun", lambda: pool_keys.refreshes)
            ctx.counter("jwks_failures", "JWKS fetches that got no keys from the URL nor the copy",
                        lambda: pool_keys.failures)
            verifiers.append(Verifier(pool_keys, issuer, settings.client_ids, settings.token_use, settings.leeway_seconds))
        if identity:
            identity_keys = remote("identity-jwks", settings.identity_jwks_url or IDENTITY_JWKS_URL)
            verifiers.append(IdentityVerifier(identity_keys, settings.identity_pool_id, settings.leeway_seconds))
    else:
        local = LocalJwks(key_file)
        ctx.cleanup_ctx(local.context)
        ctx.readiness_check("jwks", local.keys.probe)
        ctx.route("GET", "/.well-known/jwks.json", local.handle, "The local issuer's public keys",
                  public=True, responses={200: "JWKS (RFC 7517)"}, tags=("auth",))
        if user_pool:
            verifiers.append(Verifier(local.keys, ISSUER, (CLIENT_ID,), settings.token_use, settings.leeway_seconds))
        if identity:
            verifiers.append(IdentityVerifier(local.keys, IDENTITY_POOL, settings.leeway_seconds,
                                              issuer=IDENTITY_ISSUER))
    verifier, *others = verifiers
    for other in others:
        verifier.also(other)
    ctx.route_wrapper(protect(verifier), ORDER)
    ctx.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    ctx.provide(PRINCIPAL, principal)
    ctx.command("token", "print an access token from the local issuer (development only)",
                run=cli.token_command(settings, key_file), arguments=cli.arguments)


plugin = Plugin(name="auth", provides=(PRINCIPAL,), settings=AuthSettings, setup=setup)
