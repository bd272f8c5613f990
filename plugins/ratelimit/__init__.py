"""Rate limit plugin: a budget per caller (the token's subject, else the client address) for each
route class (reads, writes, media creation) per window, counted in each process and shared across
the fleet through the data plugin's CACHE (limiter.py). Over budget: 429 problem+json with
`Retry-After` and the `RateLimit`/`RateLimit-Policy` fields of draft-ietf-httpapi-ratelimit-headers-11,
which every answer of a limited route carries. Routes choose their class with `RouteSpec.limit_class`.

On by default in production only (RATELIMIT_ENABLED overrides): a developer's or test's burst is
not a flood.
"""
from __future__ import annotations

from aiohttp import web

from gateway.http import CALLER
from gateway.plugin import UNLIMITED, Handler, Plugin, RouteSpec, RouteWrapper, SetupContext
from gateway.problems import Problem
from plugins.data.api import CACHE
from plugins.ratelimit.limiter import Limiter
from plugins.ratelimit.settings import RateLimitSettings

ORDER = 200  # inside the auth plugin's wrapper (100), which names the caller
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "*")  # "*": the core's catch-all (404, 405, preflight)


def limit(limiter: Limiter, budgets: dict[str, int]) -> RouteWrapper:
    window = limiter.window_seconds

    def wrap(spec: RouteSpec, handler: Handler) -> Handler:
        name = spec.limit_class
        if name == UNLIMITED:
            return handler
        if name not in budgets:
            name = "read" if spec.method in SAFE_METHODS else "write"
        budget = budgets[name]
        policy = f'"{name}";q={budget};w={window}'
        take = limiter.take
        public = spec.public

        async def limited(request: web.Request) -> web.StreamResponse:
            caller = None if public else request.get(CALLER)
            remaining, reset = take(name, budget, caller.sub if caller else request.remote or "-")
            if remaining < 0:
                raise Problem(429, "Too Many Requests",
                              f"This caller's {name} budget ({budget} per {window} s) is used up; retry in {reset} s.",
                              headers={"Retry-After": str(reset), "RateLimit-Policy": policy,
                                       "RateLimit": f'"{name}";r=0;t={reset}'})
            response = await handler(request)
            headers = response.headers
            headers["RateLimit-Policy"] = policy
            headers["RateLimit"] = f'"{name}";r={remaining};t={reset}'
            return response

        return limited

    return wrap


def setup(ctx: SetupContext) -> None:
    settings = ctx.settings
    if not (settings.production if settings.enabled is None else settings.enabled):
        return
    limiter = Limiter(ctx.require(CACHE), settings.window_seconds, settings.flush_seconds)
    ctx.cleanup_ctx(limiter.context)
    ctx.route_wrapper(limit(limiter, {"read": settings.reads, "write": settings.writes, "media": settings.media}),
                      ORDER)
    ctx.readiness_check("ratelimit", limiter.probe, critical=False)
    ctx.counter("ratelimit_refused", "requests refused with 429 (over their caller's budget)", lambda: limiter.refused)


plugin = Plugin(name="ratelimit", setup=setup, settings=RateLimitSettings, requires=(CACHE,))
