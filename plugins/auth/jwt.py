"""Strict JWT parsing: everything about a token that can be checked before any key lookup or crypto.

A token is refused here unless it is at most 8 KiB, has exactly three non-empty base64url parts,
decodes to a JSON object header and payload (no duplicate names), uses RS256 with a plain `kid`,
and its registered claims have the types RFC 7519 and Cognito give them. Header parameters that
point at keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys come only from the configured JWKS.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from gateway.identifiers import unique_names

MAX_TOKEN_BYTES = 8192
PART = re.compile(r"[A-Za-z0-9_-]+")
KID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII: a kid is only ever a dict key, never a path or URL
STRING_CLAIMS = ("iss", "sub", "token_use", "client_id", "username", "cognito:username", "scope", "jti")
NUMERIC_CLAIMS = ("exp", "nbf", "iat", "auth_time")


class TokenError(Exception):
    """Why a token is refused, in general terms that are safe to show the caller."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class Jwt:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse(token: str) -> Jwt:
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("The token is too large.")
    parts = token.split(".")
    if len(parts) != 3 or not all(PART.fullmatch(part) for part in parts):
        raise TokenError("The token is malformed.")
    header = json_object(parts[0])
    if header.get("alg") != "RS256":
        raise TokenError("The token's signing algorithm is not accepted.")
    if "crit" in header:  # RFC 7515 4.1.11: extensions we do not understand must not be ignored
        raise TokenError("The token uses unsupported header extensions.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise TokenError("The token does not name a valid signing key.")
    payload = json_object(parts[1])
    check_claim_types(payload)
    return Jwt(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), b64decode(parts[2]))


def b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("The token is malformed.") from None


def no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_object(part: str) -> dict[str, Any]:
    try:
        value = json.loads(b64decode(part), object_pairs_hook=unique_names, parse_constant=no_constants)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise TokenError("The token is malformed.") from None
    if not isinstance(value, dict):
        raise TokenError("The token is malformed.")
    return value


def is_number(value: Any) -> bool:
    # bool is an int; 1e400 parses as an infinite float that would never expire
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_claim_types(payload: dict[str, Any]) -> None:
    if not isinstance(payload.get("sub"), str) or not payload["sub"]:
        raise TokenError("The token has no subject.")
    if "exp" not in payload:
        raise TokenError("The token has no expiry.")
    wrong = [name for name in STRING_CLAIMS if name in payload and not isinstance(payload[name], str)]
    wrong += [name for name in NUMERIC_CLAIMS if name in payload and not is_number(payload[name])]
    if "aud" in payload and not (isinstance(payload["aud"], str) or is_strings(payload["aud"])):
        wrong.append("aud")
    if "cognito:groups" in payload and not is_strings(payload["cognito:groups"]):
        wrong.append("cognito:groups")
    if wrong:
        raise TokenError("The token has claims of the wrong type.")
