"""`python -m gateway token`: prints an access token from the local issuer (development only)."""
from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

from aiohttp import web

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
    parser.add_argument("--sub", required=True, help="the subject (user id)")
    parser.add_argument("--username", help="defaults to the subject")
    parser.add_argument("--groups", type=names, default=(), help="comma-separated cognito:groups")
    parser.add_argument("--scopes", type=names, default=(), help="comma-separated OAuth scopes")
    parser.add_argument("--ttl", type=ttl, default=3600, help="lifetime in seconds (default 3600)")


def token_command(settings: SimpleNamespace, key_file: str):
    def run(app: web.Application, args: argparse.Namespace) -> int:
        if settings.user_pool_id or settings.production:
            print("token: the local issuer is off (Cognito is configured or GATEWAY_ENV=production); "
                  "sign in with Cognito instead", file=sys.stderr)
            return 2
        print(LocalIssuer(key_file).mint(args.sub, args.username, args.groups, args.scopes, args.ttl))
        return 0

    return run
