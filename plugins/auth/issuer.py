"""The local issuer: development tokens shaped like Cognito access tokens or like an identity pool's
OpenID tokens (`mint_identity`), signed with a key on disk.

The RSA key is created on first start at `AUTH_LOCAL_KEY_FILE` (mode 0600). Workers starting
together may race to create it: each writes a private temporary file and hard-links it into place,
so exactly one key wins and everyone reads that one.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.files import create_once

ISSUER = "gateway-local"
CLIENT_ID = "local-dev"
IDENTITY_ISSUER = "gateway-local-identity"
IDENTITY_POOL = "local:00000000-0000-0000-0000-000000000000"


def load_or_create_key(path: str) -> rsa.RSAPrivateKey:
    try:
        with open(path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
    except FileNotFoundError:
        return create_key(path)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError(f"{path} (AUTH_LOCAL_KEY_FILE) is not an RSA private key of at least 2048 bits")
    return key


def create_key(path: str) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if not create_once(path, pem):  # another worker got there first: everyone uses its key
        return load_or_create_key(path)
    return key


def thumbprint(public_jwk: dict) -> str:
    """RFC 7638 JWK thumbprint: a kid that changes exactly when the key does."""
    canonical = json.dumps({name: public_jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class LocalIssuer:
    def __init__(self, key_file: str) -> None:
        self._key = load_or_create_key(key_file)
        public = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.kid = thumbprint(public)
        self._jwk = {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict:
        return {"keys": [dict(self._jwk)]}

    def mint(self, sub: str, username: str | None = None, groups=(), scopes=(), ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": sub,
            "client_id": CLIENT_ID,
            "token_use": "access",
            "username": username or sub,
            "iat": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
        }
        if groups:
            claims["cognito:groups"] = list(groups)
        if scopes:
            claims["scope"] = " ".join(scopes)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def mint_identity(self, identity_id: str, providers=(), ttl: int = 600) -> str:
        """An identity pool's OpenID token for `identity_id`, as GetOpenIdToken gives one after a sign-in
        with `providers` (their names join `authenticated` in `amr`)."""
        now = int(time.time())
        claims = {"iss": IDENTITY_ISSUER, "sub": identity_id, "aud": IDENTITY_POOL,
                  "amr": ["authenticated", *providers], "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
