"""`python -m bench`: the gateway against the real MariaDB and memcached, driven by wrk on loopback.

For 1 and then 2 gunicorn workers it measures the bare baseline, the floor (bare plus one memcached
get: the least a cache-hit read can cost; bench/baseline.py) and each scenario, and writes
bench/results/latest.json plus a Markdown table (bench/results/latest.md) for docs/performance.md.
Each scenario runs in BENCH_ROUNDS rounds (default 3), each right after a round of the baseline,
and its ratio is the median of the rounds' ratios: this machine's speed drifts by several percent
from minute to minute, and adjacent rounds drift together.
Environment: BENCH_SECONDS (default 8, per scenario across its rounds), BENCH_USERS (3000),
BENCH_CONNECTIONS (64 per worker), BENCH_WORKERS ("1,2"), BENCH_ONLY (comma-separated: run only
the scenarios whose name contains one of them; the baseline and the floor always run) and
BENCH_PROFILE=1 (sample the gateway with py-spy during each scenario: a summary is printed and the
raw samples are kept in bench/results/profile-*.txt), BENCH_DATABASE (default gateway_bench: another
name lets two benches run side by side). The flood scenario (measure_flood) runs against a gateway of
its own with the production default read budget. `python -m bench.layers` prices each layer in
process; `python -m bench.instructions` counts instructions per request under callgrind.

The paths that reach the database are measured against hand-written references in the same run
(bench/baseline.py): PATCH /v1/me writing a new display name on every request, over every user and
over HOT_ROWS rows; POST /v1/media; the cold Zipf mix (the cache flushed before each). For these the
report gives the gateway's ratio to its reference, and for the writes the time a request holds a
transaction open, measured from the database's side (see `OpenTransactions`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import pymysql

from bench import profile, wrk
from bench.baseline import HOT_USERS
from devsupport.servers import free_port, memcached, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
USERS = int(os.environ.get("BENCH_USERS", "3000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
DATABASE = os.environ.get("BENCH_DATABASE", f"gateway_bench_{os.getpid()}")  # its own: benches from other checkouts may run at once
WORKERS = [int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",")]
ONLY = [part for part in os.environ.get("BENCH_ONLY", "").split(",") if part]
PROFILE = os.environ.get("BENCH_PROFILE", "") == "1"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FLOOR = "floor: bare + one memcached get"
HIT = "GET /v1/me cache hit"
POLL = "GET /v1/datasets no change (If-None-Match, 304)"
FLOOD = "rate limit: 64-connection flood from one caller"
FLOOD_BUDGET = 600  # RATELIMIT_READS per 60 s window for the flood scenario's gateway
VICTIM_REQUESTS = 250  # the other caller's reads, unloaded and then under the flood: within its budget
HOT_ROWS = 10  # the hot-row PATCH: 64 connections per worker on this many rows
PATCH_ALL, PATCH_HOT = f"PATCH /v1/me, {USERS} users", f"PATCH /v1/me, {HOT_ROWS} hot rows"
MEDIA, COLD = "POST /v1/media", "GET /v1/me Zipf mix, cold"
COMPARED = {PATCH_ALL: "write", PATCH_HOT: "write, hot rows", MEDIA: "media creation", COLD: "cold miss"}
MEDIA_BODY = {"content_type": "image/jpeg", "size": 123456, "purpose": "attachment"}
WRITE = {"method": "PATCH", "body": {"display_name": "$n"}, "hold": True}  # a new value on every request


def reference(name: str) -> str:
    return f"reference for {name}"


def mysql(sql: str) -> list:
    connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    connection.close()
    return rows


def database_reads() -> int:
    return int(mysql("SHOW GLOBAL STATUS LIKE 'Com_select'")[0][1])


class OpenTransactions:
    """Samples, every few milliseconds while a scenario runs, how many InnoDB transactions are open
    (information_schema.INNODB_TRX). By Little's law their mean over the request rate is the time
    each request holds a transaction, from its first statement to its commit: what a row lock and a
    pooled connection are held for (the connection a round trip longer, for the BEGIN). Measured
    from the database's side, the same for the gateway and its reference."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
        with connection.cursor() as cursor:
            while not self._stop.is_set():
                cursor.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")
                self.samples.append(cursor.fetchone()[0])
                time.sleep(0.005)
        connection.close()

    def __enter__(self) -> OpenTransactions:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def held_ms(self, rps: float) -> float:
        return statistics.fmean(self.samples) * 1000 / rps if self.samples and rps else 0.0


def install_bench_plugin() -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", str(ROOT / "bench" / "plugin")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start(argv: list[str], env: dict, port: int, cpus: str | None) -> subprocess.Popen:
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(30)


async def prepare_profiles(base: str, tokens: list[str]) -> None:
    """First GET /v1/me of every user creates the profile (the cold path, outside the measurements)."""
    async with aiohttp.ClientSession() as session:
        semaphore = asyncio.Semaphore(32)

        async def first(token: str) -> None:
            async with semaphore:
                async with session.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"}) as response:
                    assert response.status == 200, await response.text()

        await asyncio.gather(*(first(token) for token in tokens))


async def prepare_datasets(base: str, tokens: list[str]) -> list[str]:
    """Each user syncs one dataset (409: it did in the previous worker count's run), then lists them:
    the ETags a device polling "anything new?" sends, in the order of `tokens`."""
    async with aiohttp.ClientSession() as session:
        etags = []
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.patch(f"{base}/v1/datasets/settings/records", headers=headers,
                                     json={"changes": [{"key": "theme", "value": "dark", "sync_count": 0}]}) as response:
                assert response.status in (200, 409), await response.text()
            async with session.get(f"{base}/v1/datasets", headers=headers) as response:
                assert response.status == 200, await response.text()
                etags.append(response.headers["ETag"])
    return etags


def flush_cache(address: str) -> None:
    import socket

    host, port = address.split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(b"flush_all\r\n")
        assert connection.recv(64).startswith(b"OK")


def zipf_order(count: int, length: int = 200_000, exponent: float = 1.1) -> list[int]:
    weights = [1 / (rank ** exponent) for rank in range(1, count + 1)]
    ranks = list(range(1, count + 1))
    random.Random(7).shuffle(ranks)  # popularity is not user-id order
    return random.Random(11).choices(ranks, weights=weights, k=length)


def prepare(workdir: Path, cache_address: str, users: int) -> tuple[dict, list[str]]:
    """The environment of a gateway with the bench plugin on a fresh, migrated database, and `users`
    bearer tokens from its local issuer."""
    install_bench_plugin()
    mysql(f"DROP DATABASE IF EXISTS {DATABASE}")
    mysql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    env = {
        **os.environ,
        "GATEWAY_ENV": "test",
        "GATEWAY_DATA_DIR": str(workdir / "var"),
        "GATEWAY_PLUGINS": "health,auth,data,profiles,media,sync,ratelimit,bench",
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DATABASE}",
        "CACHE_URL": f"memcached://{cache_address}",
        "GATEWAY_LOG_LEVEL": "WARNING",
        # The limiter counts every request as in production, with budgets no scenario reaches; so
        # do the media quotas (a run creates tens of thousands of records over the same users).
        "RATELIMIT_ENABLED": "1", "RATELIMIT_READS": "1000000000", "RATELIMIT_WRITES": "1000000000",
        "RATELIMIT_MEDIA": "1000000000", "MEDIA_QUOTA_PENDING": "1000000000",
        "MEDIA_QUOTA_UPLOADS_PER_HOUR": "1000000000", "MEDIA_QUOTA_BYTES": str(2**62),
    }
    subprocess.run([sys.executable, "-m", "gateway", "migrate"], env=env, cwd=ROOT, check=True)
    from plugins.auth.issuer import LocalIssuer

    issuer = LocalIssuer(workdir / "var" / "dev-signing-key.pem")
    return env, [issuer.mint(f"bench-user-{n:05d}", username=f"user{n}", ttl=7200) for n in range(users)]


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    cache = memcached().start()
    env, tokens = prepare(workdir, cache.address, USERS)
    token_file = workdir / "tokens.txt"
    token_file.write_text("\n".join(tokens) + "\n")
    hot_file = workdir / "hot.txt"
    hot_file.write_text("\n".join(tokens[:HOT_USERS]) + "\n")
    hot_rows = workdir / "hot-rows.txt"
    hot_rows.write_text("\n".join(tokens[:HOT_ROWS]) + "\n")
    order_file = workdir / "zipf.txt"
    order_file.write_text("\n".join(map(str, zipf_order(USERS))) + "\n")

    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "python": platform.python_version()},
                     "seconds": SECONDS, "users": USERS, "runs": {}}
    try:
        for workers in WORKERS:
            results["runs"][str(workers)] = run_workers(workers, env, cache.address, tokens, token_file, hot_file,
                                                        hot_rows, order_file, workdir)
    finally:
        cache.stop()
        mysql(f"DROP DATABASE IF EXISTS {DATABASE}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    table = render(results)
    (RESULTS / "latest.md").write_text(table)
    print(table)
    return 0


def combined(rounds: list[dict]) -> dict:
    """One row from several rounds: medians of the rates and latencies, sums of the counts."""
    return {
        "rps": statistics.median(r["rps"] for r in rounds),
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "rounds": len(rounds),
    }


def run_workers(workers: int, env: dict, cache_address: str, tokens, token_file, hot_file, hot_rows, order_file,
                workdir: Path) -> dict:
    # One worker: servers on CPU 0, wrk on CPU 1, so they do not fight. Two workers: both CPUs shared.
    server_cpus, client_cpus = ("0", "1") if workers == 1 else (None, None)
    connections = CONNECTIONS * workers
    servers = []

    def serve(argv: list[str]) -> str:
        port = free_port()  # -b and -w on the command line win over the gateway's gunicorn_conf
        servers.append(start([sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", *argv],
                             env, port, server_cpus))
        return f"http://127.0.0.1:{port}"

    flood = ({FLOOD: measure_flood(workers, env, tokens, workdir, server_cpus, client_cpus)}
             if not ONLY or any(part in FLOOD for part in ONLY) else {})
    try:
        baseline = serve(["-k", "aiohttp.GunicornUVLoopWebWorker", "bench.baseline:create_app()"])
        floor = serve(["-k", "aiohttp.GunicornUVLoopWebWorker", "bench.baseline:create_floor_app()"])
        write, media, miss = (serve(["-k", "aiohttp.GunicornUVLoopWebWorker", f"bench.baseline:create_{kind}_app()"])
                              for kind in ("write", "media", "miss"))
        gateway = serve(["-c", "python:gateway.gunicorn_conf", "gateway.app:create_app()"])
        gateway_pid = servers[-1].pid
        asyncio.run(prepare_profiles(gateway, tokens))
        etag_file = workdir / "etags.txt"
        etag_file.write_text("\n".join(asyncio.run(prepare_datasets(gateway, hot_file.read_text().split()))) + "\n")
        return measure_scenarios([
            # The floor gets the cache-hit scenario's tokens.
            (FLOOR, f"{floor}/", {"tokens": hot_file}),
            ("core: open no-op", f"{gateway}/bench/open", {}),
            ("auth: protected no-op", f"{gateway}/bench/protected", {"tokens": hot_file}),
            (HIT, f"{gateway}/v1/me", {"tokens": hot_file}),
            (POLL, f"{gateway}/v1/datasets", {"tokens": hot_file, "etags": etag_file}),
            # Cold: the cache flushed first, every user's first read a miss (one round, or it warms).
            # Warm: the same mix again (so the reference's cold run comes first).
            (reference(COLD), f"{miss}/", {"tokens": token_file, "order": order_file, "flush": True}),
            (COLD, f"{gateway}/v1/me", {"tokens": token_file, "order": order_file, "flush": True}),
            ("GET /v1/me Zipf mix, warm", f"{gateway}/v1/me", {"tokens": token_file, "order": order_file}),
            (reference(PATCH_ALL), f"{write}/", {"tokens": token_file, **WRITE}),
            (PATCH_ALL, f"{gateway}/v1/me", {"tokens": token_file, **WRITE}),
            (reference(PATCH_HOT), f"{write}/", {"tokens": hot_rows, **WRITE}),
            (PATCH_HOT, f"{gateway}/v1/me", {"tokens": hot_rows, **WRITE}),
            *((name, url, {"tokens": token_file, "method": "POST", "hold": True,
                           "body": MEDIA_BODY})
              for name, url in ((reference(MEDIA), f"{media}/"), (MEDIA, f"{gateway}/v1/media"))),
            ("GET /health/ready", f"{gateway}/health/ready", {}),
        ], baseline, workers, cache_address, connections, client_cpus, gateway_pid, workdir) | flood
    finally:
        for server in servers:
            stop(server)


async def latencies(url: str, token: str, count: int) -> list[float]:
    """One caller's reads, one after another: each one's milliseconds."""
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                await response.read()
                assert response.status == 200, response.status
            times.append((time.perf_counter() - started) * 1000)
    return times


def p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


def measure_flood(workers: int, env: dict, tokens: list[str], workdir: Path, server_cpus: str | None,
                  client_cpus: str | None) -> dict:
    """One caller floods GET /v1/me over 64 connections against a gateway with the production
    default read budget, while another caller's reads are timed: its p99 under the flood as a ratio
    of its p99 alone (the target is at most 2), and how many of the flood's requests were allowed."""
    port = free_port()
    limited_env = {**env, "RATELIMIT_READS": str(FLOOD_BUDGET), "RATELIMIT_WINDOW_SECONDS": "60"}
    server = start([sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                    "-c", "python:gateway.gunicorn_conf", "gateway.app:create_app()"], limited_env, port, server_cpus)
    try:
        url = f"http://127.0.0.1:{port}/v1/me"
        # Not among the other scenarios' hot users, and others for each worker count: counts last a window.
        flooder, victim = tokens[-2 * workers], tokens[-2 * workers + 1]
        (workdir / "flooder.txt").write_text(flooder + "\n")
        asyncio.run(latencies(url, victim, 20))  # creates the profile and warms the cache
        alone = asyncio.run(latencies(url, victim, VICTIM_REQUESTS))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            window = int(time.time() // 60)
            flood = pool.submit(wrk.run, url, seconds=10, connections=64, workdir=workdir, name="flood",
                                tokens=workdir / "flooder.txt", cpus=client_cpus)
            time.sleep(1)  # the flood is under way (a bench's pacing, not a test's synchronisation)
            loaded = asyncio.run(latencies(url, victim, VICTIM_REQUESTS))
            flooded = flood.result()
            windows = int(time.time() // 60) - window + 1
    finally:
        stop(server)
    allowed = flooded["requests"] - flooded["non_2xx"]
    return {"rps": flooded["rps"], "p50_ms": statistics.median(loaded), "p99_ms": p99(loaded),
            "requests": flooded["requests"], "non_2xx": flooded["non_2xx"], "socket_errors": flooded["socket_errors"],
            "flood_allowed": allowed, "flood_budget": FLOOD_BUDGET * windows,
            "victim_p99_alone_ms": round(p99(alone), 2), "victim_p99_flooded_ms": round(p99(loaded), 2),
            "ratio": round(p99(loaded) / p99(alone), 2)}


def measure_scenarios(scenarios: list, baseline: str, workers: int, cache_address: str, connections: int,
                      client_cpus: str | None, gateway_pid: int, workdir: Path) -> dict:
    """Each scenario in rounds, each round right after a round of the baseline: a machine whose speed
    drifts (a shared VM does) moves both alike, and the ratio is the median of the rounds' ratios.
    A scenario with a reference runs in the same rounds, right after it, and its ratio to the
    reference is the median of the rounds' ratios of the two."""
    run: dict = {}
    baseline_rounds: list[dict] = []
    RESULTS.mkdir(exist_ok=True)
    for name, url, options in scenarios:
        if name != FLOOR and ONLY and not any(part in name for part in ONLY) or name.startswith(reference("")):
            continue  # a reference is measured in its scenario's rounds
        group = [entry for entry in scenarios if entry[0] in (reference(name), name)]  # the reference first
        rounds = 1 if options.get("flush") else ROUNDS
        seconds = max(1, round(SECONDS / rounds))
        measured: dict = {member: {"results": [], "ratios": [], "reads": 0, "held": []} for member, _, _ in group}
        for number in range(rounds):
            base = wrk.run(f"{baseline}/", seconds=seconds, connections=connections, workdir=workdir,
                           name="baseline", cpus=client_cpus)
            baseline_rounds.append(base)
            for member, member_url, member_options in group:
                result, reads, held = measure(member, member_url, dict(member_options), seconds, connections, workdir,
                                              client_cpus, cache_address, workers,
                                              gateway_pid if number == 0 and member == name else None)
                entry = measured[member]
                entry["results"].append(result)
                entry["ratios"].append(result["rps"] / base["rps"])
                entry["reads"] += reads
                entry["held"].append(held)
        for member, member_url, member_options in group:
            entry = measured[member]
            run[member] = combined(entry["results"])
            run[member]["ratio"] = round(statistics.median(entry["ratios"]), 3)
            if member_options.get("hold"):
                run[member]["held_ms"] = round(statistics.median(entry["held"]), 2)
            if member != FLOOR:
                run[member]["db_reads_per_1000"] = round(entry["reads"] * 1000 / max(run[member]["requests"], 1), 2)
        if len(group) == 2:
            ours, theirs = measured[group[1][0]]["results"], measured[group[0][0]]["results"]
            run[group[1][0]]["to_reference"] = round(statistics.median(
                a["rps"] / b["rps"] for a, b in zip(ours, theirs)), 3)
    return {"baseline": {**combined(baseline_rounds), "ratio": 1.0}, **run}


def measure(name: str, url: str, options: dict, seconds: int, connections: int, workdir: Path,
            client_cpus: str | None, cache_address: str, workers: int, profile_pid: int | None) -> tuple[dict, int, float]:
    """One round of one scenario: wrk's report, the database reads it made, the transaction time."""
    if options.pop("flush", False):
        flush_cache(cache_address)
    hold = options.pop("hold", False)
    slug = name.split(":")[0].replace(" ", "_").replace("/", "_").replace(",", "")
    reads_before = database_reads()
    samples = RESULTS / f"profile-{workers}-{slug}.txt"
    spy = profile.start(profile_pid, seconds, samples) if PROFILE and profile_pid else None
    transactions = OpenTransactions()
    with transactions if hold else contextlib.nullcontext():
        result = wrk.run(url, seconds=seconds, connections=connections, workdir=workdir, name=slug,
                         cpus=client_cpus, **options)
    reads = database_reads() - reads_before - len(transactions.samples)  # not the sampler's own
    if spy is not None:
        spy.wait(30)
        print(f"## {name}, {workers} worker(s)\n{profile.summary(samples)}")
    return result, reads, transactions.held_ms(result["rps"])


def render(results: dict) -> str:
    lines = [f"Machine: {results['machine']['cpus']} CPUs, {results['machine']['platform']}, "
             f"Python {results['machine']['python']}; wrk {SECONDS}s per scenario, {CONNECTIONS} connections "
             f"per worker, {results['users']} users.", ""]
    lines.append("| workers | scenario | req/s | ratio to bare | p50 ms | p99 ms | DB reads/1000 | transaction ms "
                 "| non-2xx |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for workers, run in results["runs"].items():
        for name, r in run.items():
            lines.append(f"| {workers} | {name} | {r['rps']:.0f} | {r.get('ratio', 1.0):.2f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r.get('db_reads_per_1000', '-')} | {r.get('held_ms', '-')} "
                         f"| {r['non_2xx']} |")
    lines.append("")
    for workers, run in results["runs"].items():
        if FLOOD in run:
            f = run[FLOOD]
            lines.append(f"{workers} worker(s), flood: {f['flood_allowed']} of {f['requests']} flood requests allowed "
                         f"(budget {f['flood_budget']} over the windows it spanned); the other caller's p99 "
                         f"{f['victim_p99_alone_ms']} ms alone, {f['victim_p99_flooded_ms']} ms under the flood: "
                         f"x{f['ratio']} (target at most 2).")
    for workers, run in results["runs"].items():
        if HIT in run:
            lines.append(f"{workers} worker(s): the cache hit is {run[HIT]['ratio'] / run[FLOOR]['ratio']:.2f} of the floor.")
        for name, label in COMPARED.items():
            if name in run and reference(name) in run:
                ours, theirs = run[name], run[reference(name)]
                lines.append(f"{workers} worker(s): {label} ({name}) is {ours['to_reference']:.2f} of its reference "
                             f"(median of the rounds); p99 {ours['p99_ms']:.1f} ms against {theirs['p99_ms']:.1f} ms.")
        if HIT in run and POLL in run:
            lines.append(f"{workers} worker(s): the no-change dataset poll is {run[POLL]['ratio'] / run[HIT]['ratio']:.2f} "
                         "of the cache-hit read.")
    one, two = results["runs"].get("1"), results["runs"].get("2")
    if one and two and HIT in one and HIT in two:
        lines.append(f"Scaling 1 -> 2 workers: baseline x{two['baseline']['rps'] / one['baseline']['rps']:.2f}, "
                     f"cache-hit GET /v1/me x{two[HIT]['rps'] / one[HIT]['rps']:.2f}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
