"""The in-process cache backend, the embedded default (`CACHE_URL=memory://`)."""
from __future__ import annotations

import itertools
import time
from collections import OrderedDict


class MemoryCache:
    """In-process, TTL and size bounded (least recently used goes first). Per process: with several
    workers each has its own, so writes in one do not invalidate the others; use memcached there."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[bytes, tuple[bytes, float, int]] = OrderedDict()
        self._cas = itertools.count(1)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._items.clear()

    def _live(self, key: bytes) -> tuple[bytes, float, int] | None:
        entry = self._items.get(key)
        if entry is not None and entry[1] <= time.monotonic():
            del self._items[key]
            return None
        return entry

    def _store(self, key: bytes, value: bytes, ttl: int) -> None:
        self._items[key] = (value, time.monotonic() + ttl, next(self._cas))
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    async def get(self, key: bytes) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        self._items.move_to_end(key)
        return entry[0]

    async def lease(self, key: bytes, value: bytes, ttl: int) -> int | None:
        if self._live(key) is not None:
            return None
        self._store(key, value, ttl)
        return self._items[key][2]

    async def cas(self, key: bytes, value: bytes, token: int, ttl: int) -> bool:
        entry = self._live(key)
        if entry is None or entry[2] != token:
            return False
        self._store(key, value, ttl)
        return True

    async def set(self, key: bytes, value: bytes, ttl: int) -> None:
        self._store(key, value, ttl)

    async def delete(self, *keys: bytes) -> None:
        for key in keys:
            self._items.pop(key, None)

    async def incr(self, key: bytes, delta: int, ttl: int) -> int:
        entry = self._live(key)
        if entry is None:
            self._store(key, str(delta).encode(), ttl)
            return delta
        value = int(entry[0]) + delta
        self._items[key] = (str(value).encode(), entry[1], next(self._cas))  # memcached's incr keeps the expiry too
        return value

    async def probe(self) -> dict:
        return {"backend": "memory", "items": len(self._items)}
