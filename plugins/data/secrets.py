"""The database credentials' secret: re-read from Secrets Manager when MySQL refuses them.

The secret (`DATABASE_SECRET_ARN`, JSON `{"username": ..., "password": ...}`) is rotated by an
operator; connections already open keep working, new ones fail with error 1045 until this process
uses the new value. `renew()` is what a refused connection calls: concurrent callers share one read,
and reads start at most once per `interval` (a secret that is simply wrong must not turn every new
connection into an API call). The value is never logged.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class Credentials:
    """The user and password new connections use; `version` grows with every change."""

    def __init__(self, user: str, password: str, fetch: Callable[[], Awaitable[str]], interval: float) -> None:
        self.user, self.password = user, password
        self.version = 0
        self.fetch = fetch  # the secret's string
        self.interval = interval
        self._read_at = float("-inf")
        self._reading: asyncio.Future | None = None

    async def renew(self, refused: int) -> bool:
        """After the credentials of version `refused` were refused: whether newer ones are in place."""
        if self.version == refused and self._reading is None:
            if time.monotonic() - self._read_at < self.interval:
                return False
            self._read_at = time.monotonic()
            self._reading = asyncio.ensure_future(self._read())
        if self._reading is not None:
            await asyncio.shield(self._reading)  # a caller's timeout must not cancel everyone's read
        return self.version != refused

    async def _read(self) -> None:
        try:
            secret = json.loads(await self.fetch())
            user, password = secret["username"], secret["password"]
        except Exception as exc:  # the message names the failure, never the value
            log.warning("database secret: re-read failed: %s: %s", type(exc).__name__, exc)
            return
        finally:
            self._reading = None
        if (user, password) != (self.user, self.password):
            self.user, self.password = user, password
            self.version += 1
            log.info("database secret: new credentials for user %s", user)


class SecretsManager:
    """GetSecretValue for one secret, through one aioboto3 client opened on first use."""

    def __init__(self, secret_id: str, region: str | None, endpoint_url: str | None) -> None:
        self.secret_id = secret_id
        # a secret's ARN names its region (the standby reads its own region's replica)
        self.region = secret_id.split(":")[3] if secret_id.startswith("arn:") else region
        self.endpoint_url = endpoint_url
        self._stack = contextlib.AsyncExitStack()
        self._client = None

    async def fetch(self) -> str:
        if self._client is None:
            import aioboto3
            from botocore.config import Config

            config = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})
            self._client = await self._stack.enter_async_context(aioboto3.Session().client(
                "secretsmanager", region_name=self.region, endpoint_url=self.endpoint_url, config=config))
        return (await self._client.get_secret_value(SecretId=self.secret_id))["SecretString"]

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()
