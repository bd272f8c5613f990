"""`python -m bench.instructions`: instructions per request, counted by callgrind, for the bare
baseline, the floor and the gateway's hot-path scenarios, each as a ratio to the baseline.

wrk's figures on a shared VM move by several percent from minute to minute; callgrind counts the
instructions a server executes, the same in every run for the same code and requests, so a change
of a few hundred instructions in one layer shows. Each server runs in one process under valgrind
(some fifty times slower), is warmed up, and counts only while a client sends exactly
INSTRUCTIONS_REQUESTS requests (default 2000) over 64 keep-alive connections. BENCH_ONLY selects
scenarios as for `python -m bench`. The PATCH scenarios write a new display name with every request,
over PATCH_USERS users (so that, as over the bench's 3000, two writes of one row rarely overlap); the
gateway's runs first (its first PATCH of each user creates the profile), then its hand-written
reference's (bench/baseline.py). The media scenarios create a record over the same users, each
user's first (which makes its quota row) before counting, the gateway's and then the reference's.
Instructions are not
time (cache misses and the kernel's work are not in them), so the ratios are a ruler for changes,
not the throughput; for the cache hit they came within a few percent of wrk's (docs/performance.md).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from bench.__main__ import (DATABASE, FLOOR, HIT, MEDIA, MEDIA_BODY, ONLY, POLL, RESULTS, ROOT, mysql, prepare,
                            prepare_datasets, reference)
from bench.baseline import HOT_USERS
from devsupport.servers import free_port, memcached, wait_for_port

REQUESTS = int(os.environ.get("INSTRUCTIONS_REQUESTS", "2000"))
# 64 as wrk's; a run's figure then moves by a few percent with how many requests each event-loop
# iteration happens to batch. For an A/B of a change, INSTRUCTIONS_CONNECTIONS=4 repeats to ~0.2 %.
CONNECTIONS = int(os.environ.get("INSTRUCTIONS_CONNECTIONS", "64"))
WARM_UP = 300  # after the users' first reads (which create the profiles), warms the server
PATCH_USERS = 1000

PATCH = "PATCH /v1/me"
SCENARIOS = [  # name, application, path, whether requests carry a bearer token, method
    ("baseline", "bench.baseline:create_app", "/", False, "GET"),
    (FLOOR, "bench.baseline:create_floor_app", "/", True, "GET"),
    ("core: open no-op", "gateway.app:create_app", "/bench/open", False, "GET"),
    ("auth: protected no-op", "gateway.app:create_app", "/bench/protected", True, "GET"),
    (HIT, "gateway.app:create_app", "/v1/me", True, "GET"),
    (POLL, "gateway.app:create_app", "/v1/datasets", True, "GET"),  # each token with its ETag: 304s
    (PATCH, "gateway.app:create_app", "/v1/me", True, "PATCH"),
    (reference(PATCH), "bench.baseline:create_write_app", "/", True, "PATCH"),
    (MEDIA, "gateway.app:create_app", "/v1/media", True, "POST"),
    (reference(MEDIA), "bench.baseline:create_media_app", "/", True, "POST"),
]
STATUS = {"GET": 200, "PATCH": 200, "POST": 201}


def serve(application: str, port: int) -> None:
    """The server side: one process, no gunicorn (valgrind follows one process), aiohttp's uvloop."""
    import importlib

    import uvloop
    from aiohttp import web

    module, factory = application.split(":")
    app = getattr(importlib.import_module(module), factory)()
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def send(url: str, count: int, tokens: list[str], connections: int = CONNECTIONS,
               etags: list[str] | None = None, method: str = "GET") -> None:
    """`count` requests cycling over `tokens`; with `etags` (one per token), each sends its
    If-None-Match and must be answered 304. A PATCH sets a display name no request has sent before; a
    POST creates a media record as the wrk scenario does."""
    queue = iter(range(count))
    run = os.urandom(4).hex()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def client() -> None:
            for n in queue:
                headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"} if tokens else {}
                if etags:
                    headers["If-None-Match"] = etags[n % len(etags)]
                body = {"display_name": f"{run}-{n}"} if method == "PATCH" else MEDIA_BODY if method == "POST" else None
                async with session.request(method, url, headers=headers, json=body) as response:
                    await response.read()
                    assert response.status == (304 if etags else STATUS[method]), (url, response.status)

        await asyncio.gather(*(client() for _ in range(connections)))


def count(application: str, path: str, tokens: list[str], env: dict, output: Path, poll: bool = False,
          method: str = "GET") -> int:
    port = free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}",
         sys.executable, "-m", "bench.instructions", "serve", application, str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server, timeout=300)
        url = f"http://127.0.0.1:{port}{path}"
        # each user's first request, one by one
        asyncio.run(send(url, len(tokens) or 1, tokens, connections=1 if method == "GET" else 16, method=method))
        etags = asyncio.run(prepare_datasets(f"http://127.0.0.1:{port}", tokens)) if poll else None
        asyncio.run(send(url, WARM_UP, tokens, etags=etags, method=method))
        subprocess.run(["callgrind_control", "--instr=on", str(server.pid)], check=True, capture_output=True)
        asyncio.run(send(url, REQUESTS, tokens, etags=etags, method=method))
        subprocess.run(["callgrind_control", "--instr=off", str(server.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True, capture_output=True)
    finally:
        server.terminate()
        server.wait(60)
    dumps = [path for path in output.parent.glob(output.name + "*")]
    return max(int(match.group(1)) for dump in dumps
               if (match := re.search(r"^totals:\s+(\d+)", dump.read_text(), re.M)))


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="gw-instructions-"))
    cache = memcached().start()
    try:
        env, tokens = prepare(workdir, cache.address, PATCH_USERS)
        # Under valgrind the server is some fifty times slower: no timeout of the gateway's may fire.
        env.update(DATABASE_CONNECT_TIMEOUT_SECONDS="60", DATABASE_QUERY_TIMEOUT_SECONDS="60",
                   CACHE_OP_TIMEOUT_SECONDS="10")
        # Timers run on the wall clock, and under valgrind each request takes some fifty times as long: the
        # rate limiter's flush and the turn of its window (which starts every caller's count afresh) would
        # be counted in each request as often, so the window is an hour and the flush every 5 s here.
        env.update(RATELIMIT_WINDOW_SECONDS="3600", RATELIMIT_FLUSH_SECONDS="5")
        counts = {}
        for name, application, path, with_tokens, method in SCENARIOS:
            if name not in ("baseline", FLOOR) and ONLY and not any(part in name for part in ONLY):
                continue
            slug = re.sub(r"\W+", "_", name)
            users = (tokens[:HOT_USERS] if method == "GET" else tokens) if with_tokens else []
            counts[name] = count(application, path, users, env,
                                 workdir / f"callgrind-{slug}.out", poll=name == POLL, method=method) / REQUESTS
    finally:
        cache.stop()
        mysql(f"DROP DATABASE IF EXISTS {DATABASE}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "instructions.json").write_text(json.dumps(counts, indent=2))
    print("| scenario | instructions per request | ratio to bare |\n| --- | --- | --- |")
    for name, instructions in counts.items():
        print(f"| {name} | {instructions:,.0f} | {counts['baseline'] / instructions:.3f} |")
    if HIT in counts and POLL in counts:
        print(f"\nThe no-change dataset poll is {counts[HIT] / counts[POLL]:.3f} of the cache-hit read.")
    for name in (PATCH, MEDIA):
        if name in counts and reference(name) in counts:
            print(f"\n{name} is {counts[reference(name)] / counts[name]:.3f} of its hand-written reference.")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
