"""Cache-aside over memcached (emcache) or an in-process cache, after "Scaling Memcache at
Facebook" (NSDI 2013).

`fetch(key, load, *args)` is the whole read protocol:

- a hit is one `get` and returns the stored bytes as they are;
- on a miss, concurrent callers in this process share one load (single flight), and across
  processes a lease decides who loads: the loader adds a lease value to the key itself and gets
  its cas token in the same round trip (`lease`); everyone else waits briefly for the fill and
  re-reads the cache, going to the database themselves only after LEASE_WAIT;
- the fill is a `cas` against the lease. A write commits and then deletes the key
  (`invalidate`), which removes the lease too, so a fill that began before the write can no
  longer land after it: the stale-set race is closed by versioning the lease;
- a missing row is cached too (negative caching), briefly; TTLs are jittered;
- a value whose fill was refused (a write raced it) or that never reached the cache is given only
  to the caller that loaded it; callers who joined the flight load again, so nobody who starts
  reading after a write returns can see the value from before it;
- when the cache fails or is slow, the circuit breaker opens and callers go straight to `load`:
  answers come from the database, never an error. Deletes that could not be done are retried until
  they succeed, so a stale value does not outlive the outage.

The backends (`Memcached` in memcached.py, `MemoryCache` in memory.py) offer the seven
operations of `Backend`.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import random
import re
import time
from typing import Awaitable, Callable, Protocol

log = logging.getLogger("gateway.data.cache")

LEASE = b"\x00lease:"  # stored values never start with NUL: callers store JSON-ish bytes
ABSENT = b"\x00absent"
LEASE_SECONDS = 3  # a loader that died blocks the key at most this long
LEASE_WAIT = 0.25  # how long others wait for a loader's fill before reading the database themselves
NEGATIVE_TTL = 15
SAFE_PART = re.compile(r"[A-Za-z0-9._@-]{1,64}")

Load = Callable[..., Awaitable[bytes | None]]


@functools.lru_cache(maxsize=65536)  # on every hit: a dict lookup instead of regexes and joins
def cache_key(*parts: str) -> bytes:
    """A memcached-safe key: parts that are not short and plain are hashed."""
    return b"gw1:" + ":".join(
        part if SAFE_PART.fullmatch(part) else "~" + hashlib.blake2b(part.encode(), digest_size=16).hexdigest()
        for part in parts
    ).encode()


class Backend(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def get(self, key: bytes) -> bytes | None: ...
    async def lease(self, key: bytes, value: bytes, ttl: int) -> int | None: ...  # added, its cas token; None: the key exists
    async def cas(self, key: bytes, value: bytes, token: int, ttl: int) -> bool: ...  # False: changed or gone
    async def set(self, key: bytes, value: bytes, ttl: int) -> None: ...
    async def delete(self, *keys: bytes) -> None: ...  # those of one node in one round trip
    async def incr(self, key: bytes, delta: int, ttl: int) -> int: ...  # a missing key starts at delta
    async def probe(self) -> dict: ...  # raises when unusable


class Unavailable(Exception):
    """The cache could not answer (error, timeout or open breaker)."""


class Breaker:
    """Closed, calls go through. After `threshold` failures in a row it opens: calls fail at once
    for `cooldown` seconds, then one call is let through as a probe and its success closes it."""

    def __init__(self, threshold: int = 5, cooldown: float = 2.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.open_until = 0.0

    @property
    def state(self) -> str:
        return "closed" if self.failures < self.threshold else "open"

    def allow(self) -> bool:
        if self.failures < self.threshold:
            return True
        now = time.monotonic()
        if now < self.open_until:
            return False
        self.open_until = now + self.cooldown  # this caller probes; the others keep skipping
        return True

    def success(self) -> None:
        self.failures = 0

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.cooldown


class Cache:
    """The "cache" service."""

    key = staticmethod(cache_key)

    def __init__(self, backend: Backend, ttl: int) -> None:
        self.backend = backend
        self.ttl = ttl
        self.breaker = Breaker()
        self.hits = self.misses = self.fills = self.lease_waits = self.errors = 0
        self.last_error: str | None = None
        self._flights: dict[bytes, asyncio.Future] = {}
        self._undeleted: set[bytes] = set()
        self._retrier: asyncio.Task | None = None

    async def start(self) -> None:
        await self.backend.start()
        self._retrier = asyncio.create_task(self._retry_deletes())

    async def close(self) -> None:
        if self._retrier is not None:
            self._retrier.cancel()
        await self.backend.close()

    async def _op(self, operation, *args):
        if not self.breaker.allow():
            raise Unavailable("circuit open")
        try:
            result = await operation(*args)
        except Exception as exc:
            raise self._failed(operation, exc) from exc
        self.breaker.success()
        return result

    def _failed(self, operation, exc: Exception) -> Unavailable:
        self.errors += 1
        self.last_error = f"{getattr(operation, '__name__', 'operation')}: {exc!r}"[:200]
        self.breaker.failure()
        log.debug("cache operation failed", exc_info=True)
        return Unavailable(repr(exc))

    async def mark(self, key: bytes, ttl: int) -> None:
        """Set a short-lived marker (e.g. "this caller just wrote"); best effort."""
        try:
            await self._op(self.backend.set, key, b"1", ttl)
        except Unavailable:
            pass

    async def marked(self, key: bytes) -> bool:
        """Whether the marker is set; True when the cache cannot tell, which is the safe answer."""
        try:
            return await self._op(self.backend.get, key) is not None
        except Unavailable:
            return True

    async def count(self, key: bytes, delta: int, ttl: int) -> int | None:
        """Add delta to the counter at key (created at delta, gone ttl seconds after that) and return
        its new value; None when the cache cannot answer."""
        try:
            return await self._op(self.backend.incr, key, delta, ttl)
        except Unavailable:
            return None

    async def fetch(self, key: bytes, load: Load, *args) -> bytes | None:
        """The value for key from the cache, else from `load(*args)` (None: there is no such thing)."""
        # The hit path is `_op(backend.get)` written out: this runs on nearly every read.
        if not self.breaker.allow():
            return await load(*args)
        try:
            value = await self.backend.get(key)
        except Exception as exc:
            self._failed(self.backend.get, exc)
            return await load(*args)
        self.breaker.success()
        if value is not None and value[:1] != b"\x00":
            self.hits += 1
            return value
        if value == ABSENT:
            self.hits += 1
            return None
        self.misses += 1
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = asyncio.ensure_future(self._miss(key, load, args))
            flight.add_done_callback(lambda done: self._landed(key, done))
            value, _ = await asyncio.shield(flight)
            return value
        value, shared = await asyncio.shield(flight)
        return value if shared else await load(*args)

    def _landed(self, key: bytes, flight: asyncio.Future) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here, so a failure nobody awaited any more is not logged as lost

    async def _miss(self, key: bytes, load: Load, args: tuple) -> tuple[bytes | None, bool]:
        """(value, whether it is current enough to share with callers who joined this flight)."""
        deadline = time.monotonic() + LEASE_WAIT
        waited = False
        try:
            while time.monotonic() < deadline:
                token = await self._lease(key)
                if token is not None:
                    return await self._load_and_fill(key, load, args, token)
                if not waited:
                    self.lease_waits += 1
                    waited = True
                value = await self._await_fill(key, deadline)
                if value is None:
                    continue  # the lease is gone (its loader failed, or a write removed it): take it
                if value.startswith(LEASE):
                    break  # the loader is too slow: read the database ourselves
                return (None if value == ABSENT else value), True
        except Unavailable:
            pass
        return await load(*args), False

    async def _lease(self, key: bytes) -> int | None:
        """The cas token of a lease this caller now holds on key, or None if someone else holds it."""
        return await self._op(self.backend.lease, key, LEASE + os.urandom(8), LEASE_SECONDS)

    async def _await_fill(self, key: bytes, deadline: float) -> bytes | None:
        pause = 0.002
        while True:
            value = await self._op(self.backend.get, key)
            if value is None or not value.startswith(LEASE) or time.monotonic() + pause > deadline:
                return value
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _load_and_fill(self, key: bytes, load: Load, args: tuple, token: int) -> tuple[bytes | None, bool]:
        try:
            value = await load(*args)
        except Exception:
            await self._delete(key)  # waiters take over now instead of when the lease expires
            raise
        ttl = NEGATIVE_TTL if value is None else max(1, round(self.ttl * random.uniform(0.9, 1.1)))
        try:
            filled = await self._op(self.backend.cas, key, ABSENT if value is None else value, token, ttl)
        except Unavailable:
            filled = False
        self.fills += filled
        return value, filled

    async def invalidate(self, *keys: bytes) -> None:
        """After a write has committed: delete the keys (never set them)."""
        await self._delete(*keys)

    async def _delete(self, *keys: bytes) -> None:
        try:
            await self._op(self.backend.delete, *keys)
        except Unavailable:
            self._undeleted.update(keys)

    async def _retry_deletes(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for key in list(self._undeleted):
                try:
                    await self._op(self.backend.delete, key)
                except Unavailable:
                    break
                self._undeleted.discard(key)

    def counters(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "fills": self.fills, "lease_waits": self.lease_waits,
                "errors": self.errors, "last_error": self.last_error, "breaker": self.breaker.state, "pending_deletes": len(self._undeleted)}

    async def probe(self) -> dict:
        """Readiness: every node answers; shows the counters. A failure here only degrades."""
        try:
            details = await self.backend.probe()
        except Exception as exc:
            raise Unavailable(f"{exc}; {self.counters()}") from None
        self.breaker.success()
        return {**details, **self.counters()}
