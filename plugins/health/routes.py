"""`/health/live`, `/health/ready` and `/metrics`.

Readiness runs every registered check concurrently (gateway.readiness); concurrent probes share one
run, and a result is reused for a short while. While draining it answers 503 without running any.
Its detail (each check, errors, counters, endpoints) and `/metrics` are for the VPC: they are served
on GATEWAY_INTERNAL_PORT only, and the public port answers a status word (API Gateway forwards
everything to it). With no internal port, development serves them on the one port and production
nowhere.
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.lifecycle import LIFECYCLE
from gateway.metrics import METRICS
from gateway.problems import Problem
from gateway.readiness import CHECKS, run_checks

LIVE = web.json_response({"status": "ok"}).body


async def live(request: web.Request) -> web.Response:
    return web.Response(body=LIVE, content_type="application/json")


def internal(request: web.Request, core) -> bool:
    """Whether the request came in on the internal listener."""
    if core.internal_port is None:
        return not core.production
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return bool(sockname) and sockname[1] == core.internal_port


class Readiness:
    def __init__(self, cache_seconds: float, core) -> None:
        self.cache_seconds = cache_seconds
        self.core = core
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
        detail = internal(request, self.core)
        if request.app[LIFECYCLE].draining:
            return web.json_response({"status": "draining", **({"checks": {}} if detail else {})}, status=503)
        status, results = await self.current(request.app[CHECKS])
        return web.json_response({"status": status, **({"checks": results} if detail else {})},
                                 status=503 if status == "fail" else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        if not internal(request, self.core):
            raise Problem(404, "Not Found", "There is nothing at this path.")
        return web.Response(text=request.app[METRICS].prometheus(), content_type="text/plain")
