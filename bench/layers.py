"""`python -m bench.layers`: what each layer of the hot path costs, in process, without HTTP.

wrk measures the whole server, where a microsecond of ours is lost among aiohttp's parsing and
writing; this calls the routes' composed handlers directly, on a new request each time made as
aiohttp's server makes them, so a change to one layer shows in the next run. The gateway runs on its embedded defaults (SQLite, in-process cache,
local issuer) with the bench plugin's no-op routes. Every figure is also given as a ratio to a bare
aiohttp JSON handler timed the same way in the same run. Environment: LAYERS_CALLS (default 50000).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bench.__main__ import ROOT, install_bench_plugin
from bench.baseline import handler as bare

CALLS = int(os.environ.get("LAYERS_CALLS", "50000"))


async def per_call(handler, new_request) -> float:
    """Microseconds per call on a new request each time (as a server sees them: nothing memoised on
    the request yet), the best of five rounds (the least disturbed by the rest of the machine).
    Making the requests is counted too, the same for every row."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(CALLS // 5):
            await handler(new_request())
        best = min(best, (time.perf_counter() - started) / (CALLS // 5))
    return best * 1e6


class Peer:
    """What a request reads from the connection's protocol when it is made."""

    ssl_context = None
    peername = ("127.0.0.1", 50000)
    sockname = ("127.0.0.1", 8080)
    transport = None


async def requests_for(app: web.Application, path: str, headers: dict):
    """A maker of new requests for path, routed as the application routes them: made as aiohttp's
    server makes them (make_mocked_request is far slower than what it stands in for)."""
    template = make_mocked_request("GET", path, headers=headers, app=app)
    match_info = await app.router.resolve(template)
    match_info.add_app(app)
    loop = asyncio.get_running_loop()
    peer = Peer()

    def new_request() -> web.Request:
        request = web.Request(template._message, template._payload, peer, template._payload_writer, None, loop)
        request._match_info = match_info  # as Application._handle sets it
        return request

    return new_request


async def measure(app: web.Application, token: str) -> list[tuple[str, float]]:
    auth = {"Authorization": f"Bearer {token}"}
    rows = [("bare aiohttp JSON handler", await per_call(bare, await requests_for(app, "/bench/open", {})))]
    for name, path, headers in [("core: open no-op", "/bench/open", {}),
                                ("auth: protected no-op", "/bench/protected", auth),
                                ("GET /v1/me cache hit (in-process cache)", "/v1/me", auth)]:
        new_request = await requests_for(app, path, headers)
        handler = new_request().match_info.handler
        response = await handler(new_request())
        assert response.status == 200, (path, response.status, response.body)
        rows.append((name, await per_call(handler, new_request)))
    return rows


def main() -> int:
    install_bench_plugin()
    workdir = Path(tempfile.mkdtemp(prefix="gw-layers-"))
    os.environ.update({"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(workdir),
                       "GATEWAY_PLUGINS": "health,auth,data,profiles,media,bench", "GATEWAY_LOG_LEVEL": "WARNING"})
    from gateway.app import create_app
    from plugins.auth.issuer import LocalIssuer

    subprocess.run([sys.executable, "-m", "gateway", "migrate"], cwd=ROOT, check=True)
    token = LocalIssuer(workdir / "dev-signing-key.pem").mint("layers-user", username="layers", ttl=3600)

    async def run() -> list[tuple[str, float]]:
        app = create_app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()  # start-up and cleanup contexts, as under gunicorn
        try:
            return await measure(app, token)
        finally:
            await runner.cleanup()

    stdout = os.dup(1)  # access lines go to /dev/null while measuring, written as in production
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        rows = asyncio.run(run())
    finally:
        os.dup2(stdout, 1)
    bare_us = rows[0][1]
    print("| layer | µs per call | ratio to bare |\n| --- | --- | --- |")
    for name, micros in rows:
        print(f"| {name} | {micros:.2f} | {micros / bare_us:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
