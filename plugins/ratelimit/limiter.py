"""Fixed-window request counts per route class and caller, kept in this process and shared through
the cache without a round trip per request.

Each request is counted here, in a dict. A caller's count goes to the cache as an increment
(`CACHE.count`, whose answer is the fleet's total) only when it matters: once this process has
counted a sixteenth of the quota since its last send, and after every request once the caller has
used half of it. Sends go at once, one flush at a time per process, carrying everything counted
while the previous one was out. Most callers stay far below their quotas, so most requests cost the
dict and nothing more. Below half the quota, a request is allowed while the last known fleet total
plus this process's unsent count is under it; past half, each request waits for its send and is
allowed if its place in the fleet's count (the increment's answer) is within the quota. So a quota
holds exactly across the fleet, and only callers near theirs wait a round trip. When the cache cannot answer, the counts wait here
and are retried every `flush_seconds`: the limiter fails open to counting in this process alone,
and its readiness check fails (not critical: readiness says degraded).
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable

from aiohttp import web

from plugins.data.api import Cache

wall_clock = time.time  # every instance must agree on the windows (tests fix it)


class Count:
    """One caller's requests of one class in one window."""

    __slots__ = ("key", "window", "chunk", "close", "total", "unsent", "sending", "due", "batch")

    def __init__(self, key: bytes, window: int, budget: int) -> None:
        self.key = key
        self.window = window
        self.chunk = max(1, budget // 16)  # unsent requests that are worth a send
        self.close = budget // 2  # from here on, every flush sends
        self.total = 0  # the fleet's count as the cache last answered, this process's sent ones included
        self.unsent = 0  # counted here and not yet taken by the cache (those being sent included)
        self.sending = 0  # of those, the ones the flush under way is sending
        self.due = False  # listed for the next flush
        self.batch: asyncio.Future | None = None  # the next send's answer, for requests past half the quota

    def worth_sending(self) -> bool:
        return self.unsent >= self.chunk or (self.unsent > 0 and self.total + self.unsent > self.close)


class Budget:
    """One route class's quota per caller and window, and the callers' counts in this process."""

    def __init__(self, limiter: "Limiter", name: str, quota: int) -> None:
        self.limiter = limiter
        self.name = name
        self.quota = quota
        self.seconds = limiter.window_seconds
        self.counts: dict[str, Count] = {}
        self.last: Count | None = None

    def take(self, caller: str) -> int:
        """Counts one request of caller's: the quota left after it, or -1 if it is refused (not counted)."""
        window = self.limiter.window
        count = self.counts.get(caller)
        if count is None or count.window != window:
            key = self.limiter.cache.key("ratelimit", self.name, caller, str(window))
            count = self.counts[caller] = Count(key, window, self.quota)
        self.last = count
        used = count.total + count.unsent
        if used >= self.quota:
            self.limiter.refused += 1
            return -1
        count.unsent += 1
        if not count.due and (count.unsent >= count.chunk or used >= count.close):
            count.due = True
            self.limiter.due.append(count)
            self.limiter.wake.set()
        return self.quota - used - 1

    def place(self) -> Awaitable[int | None]:
        """For the request `take` has just counted past half the quota: its place in the fleet's count
        once the cache has taken it (None if the cache did not answer: the request stays allowed).
        Near the quota, the fleet's order decides, not each process's stale view of the others."""
        count = self.last
        if count.batch is None:
            count.batch = asyncio.get_running_loop().create_future()
        return self._place(count.batch, count.unsent - count.sending)

    @staticmethod
    async def _place(batch: asyncio.Future, index: int) -> int | None:
        base = await asyncio.shield(batch)  # shared by the batch's requests: one's cancellation is not theirs
        return None if base is None else base + index

    def reset(self) -> int:
        """Seconds until the current window ends."""
        return self.seconds - int(wall_clock()) % self.seconds


class Limiter:
    def __init__(self, cache: Cache, window_seconds: int, flush_seconds: float) -> None:
        self.cache = cache
        self.window_seconds = window_seconds
        self.flush_seconds = flush_seconds
        self.budgets: list[Budget] = []
        self.due: list[Count] = []
        self.refused = self.sends = 0
        self.failing: str | None = None
        self.wake = asyncio.Event()  # a count is worth sending
        # The current window's number, kept by a timer at each window's end rather than by a clock
        # read per request (a clock read and a division were a quarter of the limiter's cost).
        self.window = int(wall_clock() // window_seconds)
        self._turning: asyncio.TimerHandle | None = None

    def budget(self, name: str, quota: int) -> Budget:
        budget = Budget(self, name, quota)
        self.budgets.append(budget)
        return budget

    async def flush(self) -> None:
        """Sends the counts worth sending and learns the fleet's totals."""
        window = self.window
        counts = [count for count in self.due if count.window == window]
        self.due.clear()
        if not counts:
            return
        sent, batches = [], []
        for count in counts:
            sent.append(count.unsent)
            batches.append(count.batch)
            count.sending, count.batch = count.unsent, None  # requests counted meanwhile go with the next
        totals = await asyncio.gather(*(self.cache.count(count.key, n, 2 * self.window_seconds)
                                        for count, n in zip(counts, sent)))
        failed = 0
        for count, n, batch, total in zip(counts, sent, batches, totals):
            count.due = False
            count.sending = 0
            if batch is not None:
                batch.set_result(None if total is None else total - n)
            if total is None:
                failed += 1
            else:
                self.sends += 1
                count.unsent -= n  # requests counted meanwhile stay unsent
                count.total = total
            if count.worth_sending():
                count.due = True
                self.due.append(count)
        self.failing = (f"the cache did not take {failed} of {len(counts)} counts: limits hold per process only"
                        if failed else None)

    def _turn(self) -> None:
        """Recomputes `window` from the wall clock, dropping the past window's counts once it has
        turned (not on every flush: a scan of every caller's count, five times a second), and comes
        back at the window's end (or at once after firing a little early: the loop's timers run on a
        monotonic clock)."""
        now = wall_clock()
        window = int(now // self.window_seconds)
        if window != self.window:
            self.window = window
            for budget in self.budgets:
                budget.counts.clear()
        self._turning = asyncio.get_running_loop().call_later(self.window_seconds - now % self.window_seconds,
                                                              self._turn)

    async def context(self, app: web.Application):
        self._turn()
        task = asyncio.create_task(self._run())
        yield
        task.cancel()
        self._turning.cancel()
        await self.flush()

    async def _run(self) -> None:
        """Sends as soon as something is worth sending, one flush at a time (what is counted meanwhile
        goes with the next); counts the cache did not take are retried every `flush_seconds`."""
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), self.flush_seconds)
            except TimeoutError:
                pass
            self.wake.clear()
            await self.flush()

    async def probe(self) -> dict:
        if self.failing:
            raise RuntimeError(self.failing)
        return {"callers": sum(len(budget.counts) for budget in self.budgets), "refused": self.refused,
                "sends": self.sends}
