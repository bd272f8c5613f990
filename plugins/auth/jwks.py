"""Signing keys by `kid`: a static set (the local issuer's) or a cached remote JWKS (Cognito's).

The remote set is fetched at start-up and kept in memory. A token with an unknown `kid` triggers
a refetch, but only one at a time (concurrent callers share it) and at most one per penalty period,
so a flood of made-up kids cannot hammer the endpoint. A failed fetch keeps the keys already known,
so tokens signed with them keep verifying while the endpoint is down.
"""
from __future__ import annotations

import asyncio
import json
import logging
from time import monotonic
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from gateway import tracing

log = logging.getLogger("gateway.auth")

MIN_KEY_BITS = 2048
MAX_JWKS_BYTES = 65536
PENALTY_SECONDS = 10.0
RETRY_DELAY_SECONDS = 0.2
TIMEOUT = aiohttp.ClientTimeout(total=2.0, sock_connect=1.0)


class JwksError(Exception):
    """The JWKS endpoint could not be reached or answered something unusable."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # worth one retry: network trouble, a timeout, a 5xx


def parse_keys(document: Any) -> dict[str, RSAPublicKey]:
    """The usable keys of a JWKS document: RSA, for signatures, RS256 when it says, 2048 bits or more."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("the JWKS is not an object with a list of keys")
    keys = {}
    for jwk in document["keys"]:
        if not (isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk.get("kty") == "RSA"
                and jwk.get("use") == "sig" and jwk.get("alg", "RS256") == "RS256"):
            continue
        try:
            # Only n and e: a JWK that also carries private parameters must never become a private key here.
            key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
        except Exception:  # pyjwt raises several types for bad members; any of them makes the key unusable
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_KEY_BITS:
            keys[jwk["kid"]] = key
    if not keys:
        raise JwksError("the JWKS has no usable RS256 signing key")
    return keys


class KeySet:
    """Keys known up front; nothing to fetch."""

    def __init__(self, keys: dict[str, RSAPublicKey] | None = None) -> None:
        self.keys = keys or {}

    def get(self, kid: str) -> RSAPublicKey | None:
        return self.keys.get(kid)

    async def fetch_for(self, kid: str) -> RSAPublicKey | None:
        return None

    async def probe(self) -> dict:
        if not self.keys:
            raise JwksError("no signing keys loaded")
        return {"keys": len(self.keys)}


class RemoteKeySet(KeySet):
    """The issuer's keys from `url`; when that cannot be reached, from `copy()` (a copy kept in this
    region: the standby verifies tokens through a primary-region outage, AUTH_JWKS_PARAMETER)."""

    def __init__(self, url: str, copy: Callable[[], Awaitable[Any]] | None = None) -> None:
        super().__init__()
        self.url = url
        self.copy = copy
        self.session: aiohttp.ClientSession | None = None
        self.fetched_at: float | None = None
        self.last_error: str | None = None
        self.refreshes = self.failures = 0  # fetches begun; fetches that got no keys from anywhere
        self._not_before = 0.0
        self._inflight: asyncio.Future | None = None

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """Cleanup context: the HTTP session and the start-up fetch (its failure only shows in readiness)."""
        async with aiohttp.ClientSession(timeout=TIMEOUT) as self.session:
            await self.refresh()
            yield
        self.session = None

    async def fetch_for(self, kid: str) -> RSAPublicKey | None:
        """The key for an unknown kid after a refetch, or None at once while in the penalty box."""
        await self.refresh()
        return self.keys.get(kid)

    async def probe(self) -> dict:
        if not self.keys:
            await self.refresh()
        if not self.keys:
            raise JwksError(self.last_error or "no signing keys loaded")
        return {"keys": len(self.keys), "age_s": round(monotonic() - self.fetched_at, 1)}

    async def refresh(self) -> None:
        """Join the fetch in flight, or start one unless the last one began within the penalty period."""
        if self._inflight is None:
            if monotonic() < self._not_before:
                return
            self._not_before = monotonic() + PENALTY_SECONDS
            self._inflight = asyncio.ensure_future(self._refresh())
            self._inflight.add_done_callback(self._landed)
        await asyncio.shield(self._inflight)  # one caller giving up must not cancel the others' fetch

    def _landed(self, future: asyncio.Future) -> None:
        self._inflight = None

    async def _refresh(self) -> None:
        self.refreshes += 1
        try:
            self.keys = parse_keys(await self._fetch())
        except JwksError as exc:
            log.warning("JWKS fetch from %s failed: %s", self.url, exc)
            if not await self._from_copy(exc):
                self.failures += 1
                self.last_error = str(exc)
                return
        self.fetched_at, self.last_error = monotonic(), None

    async def _from_copy(self, error: JwksError) -> bool:
        if self.copy is None:
            return False
        try:
            self.keys = parse_keys(await self.copy())
        except Exception as exc:  # the copy is the fallback: its failure is reported, not raised
            log.warning("JWKS copy unusable too: %r", exc)
            return False
        log.info("JWKS from this region's copy while %s is unreachable (%s)", self.url, error)
        return True

    async def _fetch(self) -> Any:
        try:
            return await self._get()
        except JwksError as exc:
            if not exc.transient:
                raise
        await asyncio.sleep(RETRY_DELAY_SECONDS)
        return await self._get()

    async def _get(self) -> Any:
        try:
            async with self.session.get(self.url, allow_redirects=False, headers=tracing.outgoing()) as response:
                if response.status != 200:
                    raise JwksError(f"HTTP {response.status}", transient=response.status >= 500)
                body = await response.content.read(MAX_JWKS_BYTES + 1)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise JwksError(f"{type(exc).__name__}: {exc}", transient=True) from None
        if len(body) > MAX_JWKS_BYTES:
            raise JwksError("the JWKS is too large")
        try:
            return json.loads(body)
        except ValueError:
            raise JwksError("the JWKS is not JSON") from None


def ssm_copy(name: str, region: str | None) -> Callable[[], Awaitable[Any]]:
    """Reads the JWKS copy from the SSM parameter `name` in this instance's region (AWS_REGION)."""

    async def read() -> Any:
        import aioboto3

        async with aioboto3.Session().client("ssm", region_name=region) as ssm:
            parameter = await ssm.get_parameter(Name=name)
        return json.loads(parameter["Parameter"]["Value"])

    return read
