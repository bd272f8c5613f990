"""CORS (the Fetch standard's protocol) for browser clients: CORS_ALLOWED_ORIGINS names the origins
whose pages may call the API, none by default (then nothing here runs).

A route wrapper, outside every plugin's (so 401s and 429s carry it too), gives every answer
`Vary: Origin` and an allowed origin's answers `Access-Control-Allow-Origin` and the headers scripts
may read. A preflight is an OPTIONS request, which reaches the core's catch-all (public: no token is
asked for) and is answered 204 with `Allow`; for an allowed origin this adds the methods, headers and
max age the browser asked about. Any other origin gets the same answer without CORS fields, which the
browser refuses. Tokens travel in `Authorization`, not cookies: credentials mode is not allowed.
"""
from __future__ import annotations

from aiohttp import web

from gateway.plugin import Handler, RouteSpec, RouteWrapper
from gateway.problems import Problem

ALLOW_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match, X-Request-Id"
EXPOSE_HEADERS = "ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id"
VARY = {"Vary": "Origin"}


def cors_wrapper(origins: tuple[str, ...], max_age: int) -> RouteWrapper:
    allowed = {origin: {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSE_HEADERS,
                        "Vary": "Origin"} for origin in origins}

    def wrap(spec: RouteSpec, handler: Handler) -> Handler:
        async def cors(request: web.Request) -> web.StreamResponse:
            fields = allowed.get(request.headers.get("Origin", ""), VARY)
            try:
                response = await handler(request)
            except Problem as problem:
                problem.headers = {**problem.headers, **fields}
                raise
            except web.HTTPException as exc:  # redirects and 304s, which the core passes on as they are
                exc.headers.update(fields)
                raise
            response.headers.update(fields)
            if (request.method == "OPTIONS" and fields is not VARY and response.status == 204
                    and "Access-Control-Request-Method" in request.headers):
                response.headers["Access-Control-Allow-Methods"] = response.headers.get("Allow", "")
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = str(max_age)
            return response

        return cors

    return wrap
