"""Fault drills under load, against gunicorn with the real MariaDB and memcached: the cache dies
and returns; the database dies and returns. Bounded in time; loopback only."""
import asyncio
import signal
import time

import aiohttp
import pytest

from plugins.auth.issuer import LocalIssuer
from devsupport import servers

USERS = 20


async def until(condition, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(interval)
    return False


def tokens_for(data_dir, count: int) -> list[str]:
    issuer = LocalIssuer(data_dir / "dev-signing-key.pem")
    return [issuer.mint(f"drill-{n}", username=f"drill{n}") for n in range(count)]


@pytest.fixture
def cache():
    server = servers.memcached().start()
    yield server
    server.stop()


async def test_memcached_killed_under_load_answers_stay_correct_and_hits_recover(mysql_database, cache, tmp_path):
    env = {"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_PLUGINS": "health,auth,data,profiles",
           "DATABASE_URL": mysql_database, "CACHE_URL": f"memcached://{cache.address}",
           "HEALTH_READY_CACHE_SECONDS": "0", "GATEWAY_LOG_LEVEL": "WARNING"}
    app = servers.gateway(env, workers=2, log=str(tmp_path / "gateway.log")).start()
    base = f"http://{app.address}"
    tokens = tokens_for(tmp_path, USERS)
    bad: list = []
    try:
        async with aiohttp.ClientSession() as session:
            names = {}
            for n, token in enumerate(tokens):  # every user gets a distinct display name
                auth = {"Authorization": f"Bearer {token}"}
                assert (await session.get(f"{base}/v1/me", headers=auth)).status == 200
                response = await session.patch(f"{base}/v1/me", json={"display_name": f"Drill {n}"}, headers=auth)
                assert response.status == 200, await response.text()
                names[token] = f"Drill {n}"

            stop = asyncio.Event()

            async def reader(worker: int) -> int:
                done = 0
                while not stop.is_set():
                    token = tokens[(worker + done) % USERS]
                    try:
                        async with session.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"},
                                               timeout=aiohttp.ClientTimeout(total=5)) as r:
                            body = await r.json(content_type=None)
                            if r.status != 200 or body.get("display_name") != names[token]:
                                bad.append((r.status, body))
                    except asyncio.TimeoutError:
                        bad.append(("no answer within 5 s", time.monotonic()))
                    done += 1
                return done

            load = [asyncio.create_task(reader(w)) for w in range(8)]
            await asyncio.sleep(0.5)
            cache.stop()
            async def degraded():
                return (await (await session.get(f"{base}/health/ready")).json())["status"] == "degraded"
            assert await until(degraded, 10), "readiness never reported the cache"
            await asyncio.sleep(1.0)  # keep the load on the database-only path for a while
            cache.start()
            async def recovered():
                ready = await (await session.get(f"{base}/health/ready")).json()
                return ready["status"] == "ok"
            assert await until(recovered, 15), "readiness did not recover after memcached returned"
            stop.set()
            served = sum(await asyncio.gather(*load))
    finally:
        app.stop(signal.SIGTERM)
    assert served > 100
    assert not bad, (bad[:5], (tmp_path / "gateway.log").read_text()[-3000:])


async def test_database_restarted_under_load_loses_no_acknowledged_write(tmp_path):
    database = servers.PrivateMariaDB()
    database.start()
    try:
        env = {"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_PLUGINS": "health,auth,data,profiles",
               "DATABASE_URL": database.create_database("drill"), "CACHE_URL": "memory://",
               "HEALTH_READY_CACHE_SECONDS": "0", "GATEWAY_LOG_LEVEL": "WARNING",
               "DATABASE_CONNECT_TIMEOUT_SECONDS": "1", "DATABASE_QUERY_TIMEOUT_SECONDS": "2"}
        app = servers.gateway(env, workers=1).start()
        base = f"http://{app.address}"
        tokens = tokens_for(tmp_path, 6)
        acknowledged: dict[str, int] = {}
        failures: list[float] = []
        outage: dict[str, float] = {}
        try:
            async with aiohttp.ClientSession() as session:
                for token in tokens:
                    assert (await session.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})).status == 200
                stop = asyncio.Event()

                async def writer(token: str) -> None:
                    counter = 0
                    while not stop.is_set():
                        counter += 1
                        try:
                            async with session.patch(f"{base}/v1/me", json={"bio": f"write {counter}"},
                                                     headers={"Authorization": f"Bearer {token}"},
                                                     timeout=aiohttp.ClientTimeout(total=10)) as r:
                                if r.status == 200:
                                    acknowledged[token] = counter
                                else:
                                    assert r.status == 503, (r.status, await r.text())
                                    failures.append(time.monotonic())
                        except aiohttp.ClientError:
                            failures.append(time.monotonic())
                        await asyncio.sleep(0.02)

                load = [asyncio.create_task(writer(token)) for token in tokens]
                await asyncio.sleep(1.0)
                outage["start"] = time.monotonic()
                database.stop(signal.SIGKILL)
                await asyncio.sleep(1.5)  # the outage: the database is gone for this long
                database.start()
                outage["end"] = time.monotonic()
                async def writes_succeed():
                    before = dict(acknowledged)
                    await asyncio.sleep(0.3)
                    return all(acknowledged.get(t, 0) > before.get(t, 0) for t in tokens)
                assert await until(writes_succeed, 15), "writes did not recover after the database came back"
                recovered = time.monotonic()
                stop.set()
                await asyncio.gather(*load)

                for token in tokens:
                    async with session.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"}) as r:
                        stored = int((await r.json())["bio"].split()[1])
                    assert stored >= acknowledged[token]
        finally:
            app.stop(signal.SIGTERM)
    finally:
        database.cleanup()
    assert failures, "the outage was not observed"
    assert all(outage["start"] <= t <= recovered for t in failures)
    assert recovered - outage["end"] < 10
