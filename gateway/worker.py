"""gunicorn worker: aiohttp's uvloop worker that drains before it stops listening (see lifecycle)."""
from __future__ import annotations

from aiohttp.worker import GunicornUVLoopWebWorker

from gateway.lifecycle import LIFECYCLE


class DrainingWorker(GunicornUVLoopWebWorker):
    def handle_exit(self, sig, frame) -> None:
        lifecycle = self.wsgi[LIFECYCLE]
        if lifecycle.draining:
            return
        lifecycle.begin_drain()
        # The serve loop closes the listener and waits for in-flight requests once alive is False.
        self.loop.call_later(lifecycle.drain_seconds, setattr, self, "alive", False)
