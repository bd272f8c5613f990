"""Fixed-window request counts per route class and caller, kept in this process and shared through
the cache without a round trip per request.

Each request is counted here, in a dict. Every `flush_seconds` (sooner after FLUSH_BATCH requests) the
counts not yet sent go to the cache as increments (`CACHE.count`), whose answers are the fleet's
totals. A request is allowed while the last known fleet total plus this process's unsent count is
under the budget: within one process the budget holds exactly; across processes a caller can exceed
it by what the others counted since their last flush. When the cache cannot answer, the counts wait
here and go with a later flush: the limiter fails open to counting in this process alone, and its
readiness check fails (not critical: readiness says degraded).
"""
from __future__ import annotations

import asyncio
import time
from aiohttp import web

from plugins.data.api import Cache

FLUSH_BATCH = 64  # counted requests that wake the flush before its time
wall_clock = time.time  # every instance must agree on the windows (tests fix it)


class Count:
    """One caller's requests of one class in one window."""

    __slots__ = ("key", "window", "total", "unsent")

    def __init__(self, key: bytes, window: int) -> None:
        self.key = key
        self.window = window
        self.total = 0  # the fleet's count as the cache last answered, this process's sent ones included
        self.unsent = 0


class Limiter:
    def __init__(self, cache: Cache, window_seconds: int, flush_seconds: float) -> None:
        self.cache = cache
        self.window_seconds = window_seconds
        self.flush_seconds = flush_seconds
        self.counts: dict[tuple[str, str], Count] = {}
        self.unsent: list[Count] = []
        self.batch = 0
        self.refused = self.flushes = 0
        self.failing: str | None = None
        self._wake: asyncio.Event | None = None

    def take(self, name: str, budget: int, caller: str) -> tuple[int, int]:
        """Counts one request: (the budget left after it, or -1 if refused; seconds until the window ends)."""
        now = wall_clock()
        window = int(now // self.window_seconds)
        reset = (window + 1) * self.window_seconds - int(now)
        count = self.counts.get((name, caller))
        if count is None or count.window != window:
            count = self.counts[(name, caller)] = Count(self.cache.key("ratelimit", name, caller, str(window)), window)
        used = count.total + count.unsent
        if used >= budget:
            self.refused += 1
            return -1, reset
        if not count.unsent:
            self.unsent.append(count)
        count.unsent += 1
        self.batch += 1
        if self.batch >= FLUSH_BATCH and self._wake is not None:
            self._wake.set()
        return budget - used - 1, reset

    async def flush(self) -> None:
        """Sends the unsent counts of the current window and learns the fleet's totals."""
        self.batch = 0
        window = int(wall_clock() // self.window_seconds)
        self.counts = {caller: count for caller, count in self.counts.items() if count.window == window}
        counts = [count for count in self.unsent if count.window == window]  # past windows are over
        self.unsent = []
        if not counts:
            return
        sent = [count.unsent for count in counts]
        totals = await asyncio.gather(*(self.cache.count(count.key, n, 2 * self.window_seconds)
                                        for count, n in zip(counts, sent)))
        self.flushes += 1
        failed = 0
        for count, n, total in zip(counts, sent, totals):
            if total is None:
                failed += 1
            else:
                count.unsent -= n
                count.total = total
            if count.unsent:  # requests counted meanwhile: take() saw unsent > 0 and did not list it again
                self.unsent.append(count)
        self.failing = (f"the cache did not take {failed} of {len(counts)} counts: limits hold per process only"
                        if failed else None)

    async def context(self, app: web.Application):
        self._wake = asyncio.Event()
        task = asyncio.create_task(self._run())
        yield
        task.cancel()
        await self.flush()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def probe(self) -> dict:
        if self.failing:
            raise RuntimeError(self.failing)
        return {"callers": len(self.counts), "refused": self.refused}
