"""Rate limit plugin: a quota per caller (the token's subject, else the client address) for each
route class (reads, writes, media creation) per window, counted in each process and shared across
the fleet through the data plugin's CACHE (limiter.py). Over quota: 429 problem+json with
`Retry-After` and the `RateLimit`/`RateLimit-Policy` fields of draft-ietf-httpapi-ratelimit-headers-11,
which answers also carry once their caller has used half its quota (on every answer they would cost
the many callers far from their quotas more than the counting does); from there on, the caller's
requests wait for the fleet's count (a round trip) and the quota holds exactly. Routes choose their class with
`RouteSpec.limit_class`. Refusals are held for RATELIMIT_REFUSAL_DELAY_SECONDS before they are
answered: a flood's connections then wait instead of taking the CPU other callers need.

On by default in production only (RATELIMIT_ENABLED overrides): a developer's or test's burst is
not a flood.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable

from aiohttp import web

from gateway.http import CALLER
from gateway.plugin import UNLIMITED, Handler, Plugin, RouteSpec, RouteWrapper, SetupContext
from gateway.problems import Problem
from plugins.data.api import CACHE
from plugins.ratelimit.limiter import Limiter
from plugins.ratelimit.settings import RateLimitSettings

ORDER = 200  # inside the auth plugin's wrapper (100), which names the caller
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "*")  # "*": the core's catch-all (404, 405, preflight)


def limit(limiter: Limiter, quotas: dict[str, int], refusal_delay: float) -> RouteWrapper:
    budgets = {name: limiter.budget(name, quota) for name, quota in quotas.items()}
    window = limiter.window_seconds

    def wrap(spec: RouteSpec, handler: Handler) -> Handler:
        name = spec.limit_class
        if name == UNLIMITED:
            return handler
        if name not in budgets:
            name = "read" if spec.method in SAFE_METHODS else "write"
        budget = budgets[name]
        take = budget.take
        quota = budget.quota
        policy = f'"{name}";q={quota};w={window}'
        public = spec.public

        async def refuse() -> web.StreamResponse:
            await asyncio.sleep(min(refusal_delay, budget.reset()))
            reset = budget.reset()
            raise Problem(429, "Too Many Requests",
                          f"This caller's {name} quota ({quota} per {window} s) is used up; retry in {reset} s.",
                          headers={"Retry-After": str(reset), "RateLimit-Policy": policy,
                                   "RateLimit": f'"{name}";r=0;t={reset}'})

        async def placed(request: web.Request, place: Awaitable[int | None], remaining: int) -> web.StreamResponse:
            position = await place
            if position is not None:
                if position > quota:
                    limiter.refused += 1
                    return await refuse()
                remaining = quota - position
            response = await handler(request)
            response.headers["RateLimit-Policy"] = policy
            response.headers["RateLimit"] = f'"{name}";r={remaining};t={budget.reset()}'
            return response

        # Not a coroutine: a request far from its caller's quota costs one call, not a frame more.
        def limited(request: web.Request) -> Awaitable[web.StreamResponse]:
            try:
                caller = request.remote if public else request[CALLER].sub
            except KeyError:  # no auth plugin names the caller
                caller = request.remote
            remaining = take(caller or "-")
            if remaining < 0:
                return refuse()
            if remaining * 2 >= quota:
                return handler(request)
            return placed(request, budget.place(), remaining)

        return limited

    return wrap


def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    if not (settings.production if settings.enabled is None else settings.enabled):
        return
    limiter = Limiter(ctx.require(CACHE), settings.window_seconds, settings.flush_seconds)
    ctx.cleanup_ctx(limiter.context)
    quotas = {"read": settings.reads, "write": settings.writes, "media": settings.media}
    ctx.route_wrapper(limit(limiter, quotas, settings.refusal_delay), ORDER)
    ctx.readiness_check("ratelimit", limiter.probe, critical=False)
    ctx.counter("ratelimit_refused", "requests refused with 429 (over their caller's budget)", lambda: limiter.refused)


plugin = Plugin(name="ratelimit", setup=setup, settings=RateLimitSettings, requires=(CACHE,))
