"""The caller's trace: the ALB's `X-Amzn-Trace-Id`, or a W3C `traceparent` when that is all there
is. The core wrapper records it on the access line and keeps it for the request's task, so calls
the gateway makes on the request's behalf (S3, a JWKS refetch) carry it on (`outgoing()`)."""
from __future__ import annotations

import contextvars
import re

from multidict import CIMultiDictProxy, istr

# Printable ASCII without quotes or backslashes, bounded: a header we repeat must not carry anything else.
SAFE = re.compile(r"[!#-\[\]-~]{1,256}")
CURRENT: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("trace", default=None)
# istr: each request's two lookups skip case-folding the names (1.2-1.5k instructions a request).
AMZN, W3C = istr("X-Amzn-Trace-Id"), istr("traceparent")


def incoming(headers: CIMultiDictProxy) -> tuple[str, str] | None:
    name, value = AMZN, headers.get(AMZN)
    if value is None:
        name, value = W3C, headers.get(W3C)
        if value is None:
            return None
    return (name, value) if SAFE.fullmatch(value) else None


def outgoing() -> dict[str, str]:
    """The headers to add to a call made on behalf of the current request (none outside one)."""
    trace = CURRENT.get()
    return {trace[0]: trace[1]} if trace else {}
