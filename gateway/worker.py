"""gunicorn worker: aiohttp's uvloop worker that drains before it stops listening (see lifecycle),
and whose failed start-up closes what it opened and ends in one line."""
from __future__ import annotations

import multiprocessing
import os

from aiohttp.worker import GunicornUVLoopWebWorker
from gunicorn.arbiter import Arbiter

from gateway.lifecycle import LIFECYCLE, exit_on_startup_failure, failed

# Set by the first worker whose start-up fails; created at import, in the master, so workers share it.
BOOT_FAILED = multiprocessing.Value("b", 0)


class DrainingWorker(GunicornUVLoopWebWorker):
    def run(self) -> None:
        # uvloop detaches a socket.socket when its server closes, but closes any other object again:
        # gunicorn's listener wrapper would log "Error while closing socket [Errno 9]" on every stop.
        self.sockets = [listener.sock for listener in self.sockets]
        try:
            super().run()
        except Exception as exc:
            if self.booted:
                raise
            with BOOT_FAILED.get_lock():
                first, BOOT_FAILED.value = not BOOT_FAILED.value, 1
            if first:  # the master sees WORKER_BOOT_ERROR and stops rather than respawning workers
                exit_on_startup_failure(failed(exc), Arbiter.WORKER_BOOT_ERROR)
            # The others leave quietly: the line is printed once, and a second WORKER_BOOT_ERROR
            # reaped while the master stops escapes gunicorn as a HaltServer traceback.
            os._exit(0)

    async def _run(self) -> None:
        try:
            await super()._run()
        except Exception:
            if not self.booted:
                await self.wsgi.cleanup()  # the cleanup contexts entered before the failure
            raise

    def handle_exit(self, sig, frame) -> None:
        lifecycle = self.wsgi[LIFECYCLE]
        if lifecycle.draining:
            return
        lifecycle.begin_drain()
        # The serve loop closes the listener and waits for in-flight requests once alive is False.
        self.loop.call_later(lifecycle.drain_seconds, setattr, self, "alive", False)
