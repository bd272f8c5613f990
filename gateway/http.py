"""The core's cross-cutting request handling, as one middleware to keep the hot path short.

It gives every request an id, believes `X-Forwarded-*` only from trusted proxies, refuses bodies
over the limit, turns every error into problem+json, asks clients to reconnect elsewhere while
draining, and writes the access line.
"""
from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import time
from typing import Iterable

from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.lifecycle import Lifecycle
from gateway.problems import Problem, from_http_exception, problem_response
from gateway.routing import route_spec

log = logging.getLogger("gateway.http")

REQUEST_ID = web.RequestKey("request_id", str)
CALLER = web.RequestKey("caller", str)  # the authenticated subject, for the access line
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class RequestIds:
    """Unique ids without uuid4's cost per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


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


def core_middleware(lifecycle: Lifecycle, access_log: AccessLog, max_body_bytes: int, trusted_proxies: tuple):
    new_id = RequestIds()

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id")
        request_id = incoming if incoming and SAFE_REQUEST_ID.fullmatch(incoming) else new_id()
        if trusted_proxies:
            request = forwarded(request, trusted_proxies)
        request[REQUEST_ID] = request_id
        try:
            length = request.content_length
            if length is not None and length > max_body_bytes:
                spec = route_spec(request)
                limit = spec.max_body if spec is not None and spec.max_body else max_body_bytes
                if length > limit:
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
        resource = request.match_info.route.resource
        access_log.write(request.method, resource.canonical if resource is not None else None, response.status,
                         (time.perf_counter() - started) * 1000, request_id, request.get(CALLER), request.remote)
        return response

    return middleware


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
