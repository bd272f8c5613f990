"""`python -m gateway token`: prints a token from the local issuer (development only): an access
token, or with `--kind identity` an identity pool's OpenID token."""
from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

from aiohttp import web

from plugins.auth.identity import IDENTITY_ID
from plugins.auth.issuer import LocalIssuer

MAX_TTL_SECONDS = 7 * 24 * 3600


def ttl(value: str) -> int:
    seconds = int(value)
    if not 0 < seconds <= MAX_TTL_SECONDS:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_TTL_SECONDS} seconds")
    return seconds


def names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=("access", "identity"), default="access",
                        help="a user pool's access token (default) or an identity pool's OpenID token")
    parser.add_argument("--sub", required=True, help="the subject: a user id, or with --kind identity an "
                                                     "identity id (REGION:GUID)")
    parser.add_argument("--providers", type=names, default=(),
                        help="--kind identity: comma-separated login providers for amr (e.g. api.twitter.com)")
    parser.add_argument("--username", help="defaults to the subject")
    parser.add_argument("--groups", type=names, default=(), help="comma-separated cognito:groups")
    parser.add_argument("--scopes", type=names, default=(), help="comma-separated OAuth scopes")
    parser.add_argument("--ttl", type=ttl, default=3600, help="lifetime in seconds (default 3600)")


def token_command(settings: SimpleNamespace, key_file: str):
    def run(app: web.Application, args: argparse.Namespace) -> int:
        if settings.user_pool_id or settings.identity_pool_id or settings.production:
            print("token: the local issuer is off (Cognito is configured or GATEWAY_ENV=production); "
                  "sign in with Cognito instead", file=sys.stderr)
            return 2
        issuer = LocalIssuer(key_file)
        if args.kind == "identity":
            if not IDENTITY_ID.fullmatch(args.sub):
                print("token: --kind identity needs an identity id (REGION:GUID) as --sub", file=sys.stderr)
                return 2
            print(issuer.mint_identity(args.sub, args.providers, args.ttl))
        else:
            print(issuer.mint(args.sub, args.username, args.groups, args.scopes, args.ttl))
        return 0

    return run
