"""The core's cross-cutting request handling, composed into every route's handler at start-up.

`core_wrapper` wraps each route once, outside every plugin's route wrapper: it gives the request an
id, believes `X-Forwarded-*` only from trusted proxies, keeps the caller's trace header, refuses
bodies over the route's limit, turns every error into problem+json, asks clients to reconnect
elsewhere while draining, counts the answer for its route and writes the access line. The
application has no aiohttp middleware at all (aiohttp adds a layer of its own to any chain, and the
hot path cannot afford either), so requests that match no route reach `no_route`, a catch-all
registered last, which answers 404 or 405 the same way. Requests aiohttp cannot parse never reach a
route: `answer_unparsable_requests` gives them the same problem+json.
"""
from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
from http import HTTPStatus
from time import perf_counter
from typing import Callable, Iterable, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway import tracing
from gateway.accesslog import AccessLog
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.plugin import Handler, RouteSpec, RouteWrapper
from gateway.problems import Problem, from_http_exception, problem_response

log = logging.getLogger("gateway.http")


class Caller(Protocol):
    sub: str


# The authenticated caller, set by an auth plugin's route wrapper; the access line records its `sub`.
CALLER = web.RequestKey("caller", Caller)
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_ids() -> Callable[[], str]:
    """Unique ids without uuid4's cost per request: a random per-process prefix and a counter, made
    without a Python frame per id."""
    return map(f"{os.urandom(6).hex()}-{{:x}}".format, itertools.count(1)).__next__


def client_address(remote: str | None, forwarded_for: str | None, trusted: Iterable) -> str | None:
    """The right-most address in X-Forwarded-For not belonging to a trusted proxy."""
    hops = [hop.strip() for hop in forwarded_for.split(",")] if forwarded_for else []
    address = remote
    for hop in [remote, *reversed(hops)]:
        address = hop
        try:
            ip = ipaddress.ip_address(hop)
        except (TypeError, ValueError):
            break
        if not any(ip in network for network in trusted):
            break
    return address


def core_wrapper(lifecycle: Lifecycle, access_log: AccessLog, metrics: Metrics, max_body_bytes: int,
                 trusted_proxies: tuple) -> RouteWrapper:
    """The core's route wrapper, the same `(spec, handler)` shape as the plugins'."""
    new_id = request_ids()

    def wrap(spec: RouteSpec, handler: Handler) -> Handler:
        limit = max(spec.max_body or 0, max_body_bytes)
        any_method = spec.method == "*"  # the catch-all: the line names the request's method, no route
        fixed = None if any_method else access_log.request_fields(spec.method, spec.path)
        stats = metrics.route(spec.method, None if any_method else spec.path)
        statuses = stats.statuses

        async def serve(request: web.Request) -> web.StreamResponse:
            started = perf_counter()
            incoming = request.headers.get("X-Request-Id")
            request_id = incoming if incoming and SAFE_REQUEST_ID.fullmatch(incoming) else new_id()
            if trusted_proxies:
                request = forwarded(request, trusted_proxies)
            trace = tracing.incoming(request.headers)
            if trace is not None:
                tracing.CURRENT.set(trace)  # this request's task only
            try:
                length = request.content_length
                if length is not None and length > limit:
                    raise Problem(413, "Content Too Large", f"Request bodies here are limited to {limit} bytes.")
                response = await handler(request)
            except Problem as problem:
                response = problem_response(problem, request_id)
            except web.HTTPException as exc:
                if exc.status < 400:  # redirects and 304 pass through as they are
                    exc.headers["X-Request-Id"] = request_id
                    raise
                response = problem_response(from_http_exception(exc), request_id)
            except Exception:
                log.exception("unhandled error", extra={"request_id": request_id})
                response = problem_response(
                    Problem(500, "Internal Server Error", "Something went wrong; quote the request id when reporting it."),
                    request_id,
                )
            response.headers["X-Request-Id"] = request_id
            if lifecycle.draining:
                response.force_close()
            caller = request.get(CALLER)
            status = response.status
            duration_ms = (perf_counter() - started) * 1000
            statuses[status] = statuses.get(status, 0) + 1
            stats.duration_ms += duration_ms
            access_log.write(fixed or access_log.request_fields(request.method, None), status, duration_ms,
                             request_id, caller and caller.sub, request.remote, trace and trace[1])
            return response

        return serve

    return wrap


async def no_route(request: web.Request) -> web.StreamResponse:
    """The catch-all route: 405 with `Allow` when another route has this path, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed and request.method == "OPTIONS":  # RFC 9110's OPTIONS, and CORS preflights (gateway/cors.py)
        return web.Response(status=204, headers={"Allow": ",".join(sorted(allowed | {"OPTIONS"}))})
    if allowed:
        raise Problem(405, "Method Not Allowed", f"{request.method} is not allowed here.",
                      headers={"Allow": ",".join(sorted(allowed))})
    raise Problem(404, "Not Found", "There is nothing at this path.")


def answer_unparsable_requests() -> None:
    """A request aiohttp cannot parse (a header over `max_field_size`, a malformed request line) is
    answered by its protocol before any route, from `RequestHandler.handle_error`: plain text without a
    request id, logged by `aiohttp.server` at error level with a traceback. aiohttp has no hook for
    that answer (a `request_factory` makes the request, but the handler stays aiohttp's own), so that
    method is replaced here: a client error becomes problem+json with a request id and one info line
    (the error's type, never the bytes it quotes); server errors keep aiohttp's handling. The
    oversized-header tests fail if this stops working."""
    original = RequestHandler.handle_error
    new_id = request_ids()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        if not 400 <= status < 500 or request.writer.output_size > 0:
            return original(self, request, status, exc, message)
        request_id = new_id()
        log.info("unparsable request from %s: %s", request.remote, type(exc).__name__ if exc else status,
                 extra={"request_id": request_id})
        response = problem_response(Problem(status, HTTPStatus(status).phrase, UNPARSABLE), request_id)
        response.headers["X-Request-Id"] = request_id
        response.force_close()
        return response

    RequestHandler.handle_error = handle_error


UNPARSABLE = "The request could not be parsed: a malformed request line or header, or a header over 16 KiB."
answer_unparsable_requests()


def forwarded(request: web.Request, trusted_proxies: tuple) -> web.Request:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return request
    if not any(peer in network for network in trusted_proxies):
        return request
    remote = client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted_proxies)
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
    changes = {"remote": remote}
    if proto in ("http", "https"):
        changes["scheme"] = proto
    return request.clone(**changes)
