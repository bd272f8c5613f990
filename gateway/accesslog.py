"""One JSON line per request, written without the logging module.

The hot-path budget (see docs/performance.md) cannot afford a LogRecord per request, so lines are
collected and written once per event-loop iteration (their `ts` is that moment's), in chunks that
never split a line and stay under PIPE_BUF so several workers sharing one stdout never interleave
inside a line.
"""
from __future__ import annotations

import asyncio
import os
import select
import time
from json.encoder import encode_basestring_ascii as encode_string

CHUNK = select.PIPE_BUF
TRACE = ',"trace":'


class AccessLog:
    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lines: list[str] = []
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
        if not self._lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write at once
                self._lines.append(line)
                return self.flush()
        self._lines.append(line)

    def flush(self) -> None:
        # One timestamp for the lines of an event-loop iteration: they were served within it.
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
