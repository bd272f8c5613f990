"""One JSON line per request, written without the logging module.

The hot-path budget (see docs/performance.md) cannot afford a LogRecord per request, so lines are
collected and written every FLUSH_SECONDS (their `ts` is that moment's, at most that long after the
answer; a write per event-loop iteration cost ~12k instructions a request at low load), in chunks
that never split a line and stay under PIPE_BUF so several workers sharing one stdout never
interleave inside a line. What is collected when the app stops is written then; a worker killed
outright loses at most FLUSH_SECONDS of lines.
"""
from __future__ import annotations

import asyncio
import os
import select
import time
from json.encoder import encode_basestring_ascii as encode_string
from typing import AsyncIterator

CHUNK = select.PIPE_BUF
FLUSH_SECONDS = 0.1
TRACE = ',"trace":'


class AccessLog:
    def __init__(self, fd: int = 1, interval: float = FLUSH_SECONDS) -> None:
        self.fd = fd
        self.interval = interval
        self._lines: list[str] = []
        self._pending: asyncio.TimerHandle | None = None
        self._second = 0
        self._stamp = ""

    def timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # strftime once per second, not per request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    @staticmethod
    def request_fields(method: str, route: str | None) -> str:
        """The line's method and route fields; routes render this once, at start-up. The method (an
        HTTP token) cannot hold a character JSON escapes; the route is encoded."""
        return f'"method":"{method}","route":{"null" if route is None else encode_string(route)}'

    def write(self, request_fields: str, status: int, duration_ms: float, request_id: str,
              sub: str | None, remote: str | None, trace: str | None) -> None:
        """One line. The request id (checked or made by us) and the remote address cannot hold a
        character JSON escapes; the subject and the trace header are encoded."""
        self.append(
            f'"level":"info","logger":"access",{request_fields},'
            f'"status":{status},"duration_ms":{duration_ms:.3f},'
            f'"request_id":"{request_id}","sub":{"null" if sub is None else encode_string(sub)},'
            f'"remote":{"null" if remote is None else encode_string(remote)}'
            f'{"" if trace is None else TRACE + encode_string(trace)}}}'
        )

    def append(self, line: str) -> None:
        """A line's fields after `{"ts":...,` (the flush stamps it), closed by its `}`."""
        self._lines.append(line)
        if self._pending is None:
            try:
                self._pending = asyncio.get_running_loop().call_later(self.interval, self.flush)
            except RuntimeError:  # no loop: write at once
                self.flush()

    async def context(self, app) -> AsyncIterator[None]:
        """A cleanup context: the lines still collected are written when the app stops."""
        yield
        self.flush()

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if not self._lines:
            return
        # One timestamp for the lines collected since the last flush.
        stamp = f'\n{{"ts":"{self.timestamp(time.time())}",'
        data = (stamp + stamp.join(self._lines) + "\n").encode()[1:]
        self._lines = []
        while data:
            # Cut at a line end at most PIPE_BUF in (a longer line goes whole): a write that size to a
            # pipe is atomic, so no other worker's line lands inside one of ours.
            end = len(data) if len(data) <= CHUNK else (data.rfind(b"\n", 0, CHUNK) + 1 or data.find(b"\n") + 1)
            try:
                written = os.write(self.fd, data[:end])
            except OSError:
                return  # stdout gone or full: losing access lines must not fail requests
            data = data[written:]
