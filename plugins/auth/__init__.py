"""Auth plugin: bearer tokens from Cognito (or, with no Cognito configured, from a local issuer),
verified as strictly as aws-jwt-verify and then some; provides `principal(request)` as PRINCIPAL
(plugins/auth/api.py, the module other plugins import).

jwt.py parses strictly, jwks.py holds the signing keys, verifier.py checks claims and signatures and
caches the outcome, protect.py enforces each route's declaration, issuer.py is the local issuer.
"""
import os

from gateway.plugin import Plugin, SetupContext

from plugins.auth import cli
from plugins.auth.issuer import CLIENT_ID, ISSUER
from plugins.auth.jwks import RemoteKeySet, ssm_copy
from plugins.auth.protect import ORDER, protect
from plugins.auth.api import PRINCIPAL
from plugins.auth.principal import principal
from plugins.auth.routes import LocalJwks
from plugins.auth.settings import AuthSettings
from plugins.auth.verifier import Verifier

def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    key_file = settings.local_key_file or os.path.join(ctx.core.data_dir, "dev-signing-key.pem")
    if settings.user_pool_id:
        issuer = f"https://cognito-idp.{settings.region}.amazonaws.com/{settings.user_pool_id}"
        keys = RemoteKeySet(settings.jwks_url or f"{issuer}/.well-known/jwks.json",
                            ssm_copy(settings.jwks_parameter, settings.aws_region) if settings.jwks_parameter else None)
        ctx.cleanup_ctx(keys.context)
        ctx.counter("jwks_refreshes", "JWKS fetches begun", lambda: keys.refreshes)
        ctx.counter("jwks_failures", "JWKS fetches that got no keys from the URL nor the copy",
                    lambda: keys.failures)
        verifier = Verifier(keys, issuer, settings.client_ids, settings.token_use, settings.leeway_seconds)
    else:
        local = LocalJwks(key_file)
        keys = local.keys
        ctx.cleanup_ctx(local.context)
        ctx.route("GET", "/.well-known/jwks.json", local.handle, "The local issuer's public keys",
                  public=True, responses={200: "JWKS (RFC 7517)"}, tags=("auth",))
        verifier = Verifier(keys, ISSUER, (CLIENT_ID,), settings.token_use, settings.leeway_seconds)
    ctx.readiness_check("jwks", keys.probe)
    ctx.route_wrapper(protect(verifier), ORDER)
    ctx.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    ctx.provide(PRINCIPAL, principal)
    ctx.command("token", "print an access token from the local issuer (development only)",
                run=cli.token_command(settings, key_file), arguments=cli.arguments)


plugin = Plugin(name="auth", provides=(PRINCIPAL,), settings=AuthSettings, setup=setup)
