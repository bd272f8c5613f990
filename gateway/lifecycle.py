"""Start-up and graceful shutdown: draining, then closing the listener, then the pools.

On SIGTERM readiness turns `draining` at once (the load balancer stops sending new work), requests
are still served for GATEWAY_DRAIN_SECONDS, then the listener closes, in-flight requests finish
and cleanup contexts (pools) close. `serve` does this for `python -m gateway serve`;
`gateway.worker` does the same under gunicorn.

A start-up that fails (a busy port, a backend that will not open) closes what it opened and ends
in one line on stderr and a non-zero exit (`exit_on_startup_failure`); the traceback is logged at DEBUG.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import NoReturn

from aiohttp import web

log = logging.getLogger("gateway.lifecycle")


class Lifecycle:
    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.draining = False
        # Set by `check`: the app starts only to look (plugins' start-up changes nothing, migrates nothing).
        self.inspecting = False

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining", extra={"drain_seconds": self.drain_seconds})


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


class StartupError(Exception):
    """The server could not start; the message is the one line for the operator, the cause is chained."""


def failed(exc: Exception) -> StartupError:
    return StartupError(f"start-up failed: {type(exc).__name__}: {exc}")


def cannot_listen(host: str, port: int, exc: OSError, variable: str = "GATEWAY_PORT") -> StartupError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return StartupError(f"cannot listen on {host}:{port}: {reason}; "
                        f"choose another address with GATEWAY_HOST/{variable}")


def exit_on_startup_failure(exc: StartupError, status: int) -> NoReturn:
    """Print one line for a failed start-up and leave at once, traceback only at DEBUG. The exit is
    immediate because a thread started by a half-entered cleanup context (aiosqlite's, say) would
    otherwise keep the process alive after everything else has been closed."""
    log.debug("start-up failed", exc_info=exc.__cause__ or exc)
    print(" ".join(str(exc).split()), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


async def serve(app: web.Application, host: str, port: int, internal_port: int | None = None,
                shutdown_timeout: float = 30.0) -> None:
    """Run until SIGTERM or SIGINT, then drain and shut down gracefully; also on `internal_port`
    when given (GATEWAY_INTERNAL_PORT). A failed start-up raises StartupError after closing
    whatever the app had opened."""
    lifecycle = app[LIFECYCLE]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout, handle_signals=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        try:
            await runner.setup()
        except Exception as exc:
            raise failed(exc) from exc
        listeners = {port: "GATEWAY_PORT", **({internal_port: "GATEWAY_INTERNAL_PORT"} if internal_port else {})}
        for number, variable in listeners.items():
            try:
                await web.TCPSite(runner, host, number).start()
            except OSError as exc:
                raise cannot_listen(host, number, exc, variable) from exc
        log.info("serving", extra={"host": host, "port": port, "internal_port": internal_port})
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        lifecycle.begin_drain()
        await asyncio.sleep(lifecycle.drain_seconds)
    finally:
        await runner.cleanup()
