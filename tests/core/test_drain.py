"""Graceful shutdown with a real SIGTERM, under gunicorn's uvloop worker and under `serve`:
readiness turns `draining` at once, requests keep being served for the drain time, an in-flight
slow request completes, and no request of eight clients under load fails."""
import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from devsupport.servers import free_port, wait_for_port
from tests.data.conftest import eventually

DRAIN = 2.0


COMMANDS = {
    "gunicorn": [sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", "gateway.app:create_app()"],
    "serve": [sys.executable, "-m", "gateway", "serve"],
}


@pytest.mark.parametrize("runner", ["gunicorn", "serve"])
async def test_sigterm_drains_before_closing(runner, sample_plugin, tmp_path):
    port = free_port()
    env = {**os.environ, "GATEWAY_PLUGINS": f"health,{sample_plugin}", "GATEWAY_PORT": str(port),
           "GATEWAY_WORKERS": "1", "GATEWAY_DRAIN_SECONDS": str(DRAIN), "GATEWAY_DATA_DIR": str(tmp_path),
           "HEALTH_READY_CACHE_SECONDS": "0"}
    process = subprocess.Popen(COMMANDS[runner], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            assert (await session.get(f"{base}/health/ready")).status == 200
            slow = asyncio.create_task(session.get(f"{base}/sample/slow", params={"seconds": str(DRAIN + 1)}))

            async def sleeping() -> int:
                return (await (await session.get(f"{base}/sample/sleeping")).json())["sleeping"]

            await eventually(sleeping, what="the slow request in progress before the signal")

            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            ready_statuses, live_failures, draining_seen = [], [], []

            async def client_loop() -> None:
                """A client that keeps calling through the drain, reconnecting when asked to."""
                async with aiohttp.ClientSession() as own:
                    while time.monotonic() - signalled < DRAIN - 0.5:
                        try:
                            ready = await own.get(f"{base}/health/ready")
                            ready_statuses.append((ready.status, (await ready.json())["status"]))
                            if ready.status == 503:
                                draining_seen.append(time.monotonic() - signalled)
                            live = await own.get(f"{base}/health/live")
                            if live.status != 200:
                                live_failures.append(live.status)
                        except aiohttp.ClientError as exc:
                            live_failures.append(repr(exc))

            await asyncio.gather(*(client_loop() for _ in range(8)))

            response = await slow
            assert response.status == 200 and (await response.json()) == {"slept": True}
        assert process.wait(timeout=30) == 0, process.stderr.read().decode()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert not live_failures, live_failures
    assert draining_seen and min(draining_seen) < 1.0, ready_statuses[:5]
    assert set(ready_statuses[-3:]) == {(503, "draining")}
