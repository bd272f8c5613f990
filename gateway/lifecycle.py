"""Start-up and graceful shutdown: draining, then closing the listener, then the pools.

On SIGTERM readiness turns `draining` at once (the load balancer stops sending new work), requests
are still served for GATEWAY_DRAIN_SECONDS, then the listener closes, in-flight requests finish
and cleanup contexts (pools) close. `serve` does this for `python -m gateway serve`;
`gateway.worker` does the same under gunicorn.
"""
from __future__ import annotations

import asyncio
import logging
import signal

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


async def serve(app: web.Application, host: str, port: int, shutdown_timeout: float = 30.0) -> None:
    """Run until SIGTERM or SIGINT, then drain and shut down gracefully."""
    lifecycle = app[LIFECYCLE]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("serving", extra={"host": host, "port": port})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        lifecycle.begin_drain()
        await asyncio.sleep(lifecycle.drain_seconds)
    finally:
        await runner.cleanup()
