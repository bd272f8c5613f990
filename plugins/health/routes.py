"""`/health/live` and `/health/ready`.

Readiness runs every registered check concurrently (gateway.readiness); concurrent probes share one
run, and a result is reused for a short while. While draining it answers 503 without running any.
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.lifecycle import LIFECYCLE
from gateway.readiness import CHECKS, run_checks

LIVE = web.json_response({"status": "ok"}).body


async def live(request: web.Request) -> web.Response:
    return web.Response(body=LIVE, content_type="application/json")


class Readiness:
    def __init__(self, cache_seconds: float) -> None:
        self.cache_seconds = cache_seconds
        self._result: tuple[float, str, dict] | None = None
        self._running: asyncio.Task | None = None

    async def current(self, checks) -> tuple[str, dict]:
        now = time.monotonic()
        if self._result and now - self._result[0] < self.cache_seconds:
            return self._result[1], self._result[2]
        if self._running is None:
            self._running = asyncio.ensure_future(run_checks(checks))
            self._running.add_done_callback(self._finished)
        return await asyncio.shield(self._running)

    def _finished(self, task: asyncio.Task) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            status, results = task.result()
            self._result = (time.monotonic(), status, results)

    async def handle(self, request: web.Request) -> web.Response:
        if request.app[LIFECYCLE].draining:
            return web.json_response({"status": "draining", "checks": {}}, status=503)
        status, results = await self.current(request.app[CHECKS])
        return web.json_response({"status": status, "checks": results}, status=503 if status == "fail" else 200)
