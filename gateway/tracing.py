"""The caller's trace: the ALB's `X-Amzn-Trace-Id`, or a W3C `traceparent` when that is all there
is. The core wrapper records it on the access line and keeps it for the request's task, so calls
the gateway makes on the request's behalf (S3, a JWKS refetch) carry it on (`outgoing()`)."""
from __future__ import annotations

import contextvars
import re

from multidict import CIMultiDictProxy

# Printable ASCII without quotes or backslashes, bounded: a header we repeat must not carry anything else.
SAFE = re.compile(r"[!#-\[\]-~]{1,256}")
CURRENT: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("trace", default=None)


def incoming(headers: CIMultiDictProxy) -> tuple[str, str] | None:
    for name in ("X-Amzn-Trace-Id", "traceparent"):
        value = headers.get(name)
        if value is not None:
            return (name, value) if SAFE.fullmatch(value) else None
    return None


def outgoing() -> dict[str, str]:
    """The headers to add to a call made on behalf of the current request (none outside one)."""
    trace = CURRENT.get()
    return {trace[0]: trace[1]} if trace else {}
