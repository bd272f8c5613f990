"""The cache on its own, over the in-process backend and real memcached: hits, misses, negative
entries, one load for a stampede across two caches, invalidation, and the circuit breaker."""
from __future__ import annotations

import asyncio
import time

import pytest

from plugins.data.cache import Cache, cache_key
from plugins.data.memcached import Memcached
from plugins.data.memory import MemoryCache
from tests.data.conftest import eventually
from devsupport import servers
from devsupport.servers import free_port


class Loader:
    """A load function that counts its calls and can be held until released."""

    def __init__(self, value: bytes | None) -> None:
        self.value = value
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> bytes | None:
        self.calls += 1
        await self.release.wait()
        return self.value


@pytest.fixture(params=["memory", "memcached"])
async def caches(request, memcached_server):
    """Two caches over one store, like two instances sharing memcached."""
    if request.param == "memory":
        shared = MemoryCache(1000)
        pair = [Cache(shared, ttl=60), Cache(shared, ttl=60)]
    else:
        url = f"memcached://{memcached_server.address}"
        pair = [Cache(Memcached(url, timeout=0.5, max_connections=2), ttl=60) for _ in range(2)]
    for cache in pair:
        await cache.start()
    yield pair
    for cache in pair:
        await cache.close()


@pytest.fixture
def key(request):
    return cache_key("test", request.node.name)


async def test_a_miss_loads_and_fills_then_hits_do_not_load(caches, key):
    cache, _ = caches
    load = Loader(b'"1"\n{"a":1}')
    assert await cache.fetch(key, load) == load.value
    assert await cache.fetch(key, load) == load.value
    assert load.calls == 1 and (cache.misses, cache.fills, cache.hits) == (1, 1, 1)


async def test_missing_things_are_cached_too(caches, key):
    cache, _ = caches
    load = Loader(None)
    assert await cache.fetch(key, load) is None
    assert await cache.fetch(key, load) is None
    assert load.calls == 1


async def test_a_stampede_on_two_caches_loads_once(caches, key):
    load = Loader(b"value")
    load.release.clear()
    stampede = [asyncio.create_task(cache.fetch(key, load)) for _ in range(50) for cache in caches]
    await eventually(lambda: load.calls, what="a load started")
    load.release.set()
    assert set(await asyncio.gather(*stampede)) == {b"value"}
    assert load.calls == 1
    assert sum(cache.lease_waits for cache in caches) == 1  # the other cache's single flight waited


async def test_invalidation_makes_the_next_fetch_load_again(caches, key):
    first, second = caches
    await first.fetch(key, Loader(b"old"))
    await second.invalidate(key)
    assert await first.fetch(key, Loader(b"new")) == b"new"


async def test_a_fill_racing_an_invalidation_is_refused(caches, key):
    cache, other = caches
    load = Loader(b"read before the write")
    load.release.clear()
    reading = asyncio.create_task(cache.fetch(key, load))
    await eventually(lambda: load.calls, what="a load started")
    await other.invalidate(key)  # the write committed, then invalidated
    load.release.set()
    assert await reading == b"read before the write"
    assert cache.fills == 0
    assert await cache.fetch(key, Loader(b"after the write")) == b"after the write"


async def test_an_unreachable_memcached_opens_the_breaker_and_costs_nothing_after():
    cache = Cache(Memcached(f"memcached://127.0.0.1:{free_port()}", timeout=0.05, max_connections=1), ttl=60)
    await cache.start()
    try:
        load = Loader(b"from the database")
        for _ in range(cache.breaker.threshold):
            assert await cache.fetch(b"k", load) == b"from the database"
        assert cache.breaker.state == "open"
        errors = cache.errors
        for _ in range(100):
            assert await cache.fetch(b"k", load) == b"from the database"
        assert cache.errors == errors  # not one attempt: each would have failed and counted
        await cache.invalidate(b"k")
        assert cache.counters()["pending_deletes"] == 1  # retried once memcached answers again
        with pytest.raises(Exception, match="unreachable"):
            await cache.probe()
    finally:
        await cache.close()


async def test_the_memory_cache_is_bounded():
    cache = Cache(MemoryCache(max_items=10), ttl=60)
    for i in range(50):
        await cache.fetch(cache_key("k", str(i)), Loader(b"v"))
    assert (await cache.probe())["items"] == 10


def test_keys_are_safe_for_memcached():
    key = cache_key("profile", "default", "a user with spaces\nand a newline" * 20)
    assert len(key) < 250 and all(33 <= byte < 127 for byte in key)
    assert cache_key("profile", "default", "plain-sub") == b"gw1:profile:default:plain-sub"


@pytest.fixture
def second_memcached():
    server = servers.memcached().start()
    yield server
    server.stop()


async def test_keys_spread_over_several_nodes_and_a_dead_node_shows_in_the_probe(memcached_server, second_memcached):
    nodes = [memcached_server, second_memcached]
    cache = Cache(Memcached(f"memcached://{','.join(n.address for n in nodes)}", timeout=0.5, max_connections=2), 60)
    await cache.start()
    try:
        keys = [cache_key("spread", str(i)) for i in range(40)]
        for key in keys:
            await cache.fetch(key, Loader(b"v"))
        assert (await cache.probe())["nodes"] == 2
        per_node = []
        for node in nodes:
            alone = Memcached(f"memcached://{node.address}", timeout=0.5, max_connections=1)
            await alone.start()
            per_node.append(sum([await alone.get(key) is not None for key in keys]))
            await alone.close()
        assert sum(per_node) == 40 and min(per_node) > 0
        second_memcached.stop()
        with pytest.raises(Exception, match=second_memcached.address):
            await asyncio.wait_for(cache.probe(), 2)  # as readiness runs it
    finally:
        await cache.close()


async def test_auto_discovery_finds_the_nodes_from_the_configuration_endpoint(memcached_server):
    host, port = memcached_server.address.split(":")

    async def configuration_endpoint(reader, writer):
        # ElastiCache's answer to `config get cluster`: a version, then host|ip|port of each node
        while (await reader.readline()).startswith(b"config get cluster"):
            nodes = f"1\n{host}|{host}|{port}\n".encode()
            writer.write(b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(nodes), nodes))
            await writer.drain()
        writer.close()

    endpoint = await asyncio.start_server(configuration_endpoint, "127.0.0.1", 0)
    address = "127.0.0.1:%d" % endpoint.sockets[0].getsockname()[1]
    cache = Cache(Memcached(f"memcached+discovery://{address}", timeout=0.5, max_connections=1), 60)
    try:
        await cache.start()
        assert (await cache.probe())["nodes"] == 1
        key = cache_key("discovered", str(time.time()))
        assert await cache.fetch(key, Loader(b"v")) == b"v" and cache.fills == 1
        assert await cache.fetch(key, Loader(b"other")) == b"v"
    finally:
        await cache.close()
        endpoint.close()


async def test_a_counter_is_shared_and_starts_at_its_first_delta(caches, key):
    """The rate limiter's operation: two caches (two instances) add to one counter."""
    first, second = caches
    assert await first.count(key, 3, ttl=60) == 3
    assert await second.count(key, 4, ttl=60) == 7
    concurrent = await asyncio.gather(*(cache.count(key, 1, ttl=60) for cache in caches for _ in range(10)))
    assert sorted(concurrent) == list(range(8, 28))  # each increment answered with its own total
    assert await first.count(key, 0, ttl=60) == 27


async def test_a_counter_is_none_when_the_cache_cannot_answer():
    cache = Cache(Memcached(f"memcached://127.0.0.1:{free_port()}", timeout=0.2, max_connections=1), ttl=60)
    await cache.start()
    try:
        assert await cache.count(cache_key("test", "down"), 1, ttl=60) is None
    finally:
        await cache.close()


async def test_several_keys_are_deleted_in_one_round_trip_and_the_connection_stays_in_step(memcached_server):
    backend = Memcached(f"memcached://{memcached_server.address}", timeout=0.5, max_connections=1)
    await backend.start()
    try:
        keys = [cache_key("together", str(i)) for i in range(3)]
        await backend.set(keys[0], b"a", 60)
        await backend.set(keys[2], b"c", 60)  # keys[1] is not there: its delete is NOT_FOUND
        operations = lambda: sum(m.operations_executed for m in  # noqa: E731
                                 backend.client.cluster_managment().connection_pool_metrics().values())
        before = operations()
        await backend.delete(*keys)
        assert operations() - before == 1
        assert [await backend.get(key) for key in keys] == [None, None, None]
        await backend.delete(keys[1], keys[0])  # only misses: still one acknowledged answer
        before = operations()
        await backend.delete(keys[2])  # one key, not there: the same path, one operation, no error
        assert operations() - before == 1
        # On the one connection, every later answer is its own command's (no unread reply is left).
        await backend.set(keys[1], b"b", 60)
        assert await backend.get(keys[1]) == b"b" and await backend.lease(keys[1], b"x", 60) is None
    finally:
        await backend.close()


async def test_keys_of_several_nodes_are_all_invalidated(memcached_server, second_memcached):
    cache = Cache(Memcached(f"memcached://{memcached_server.address},{second_memcached.address}", timeout=0.5,
                            max_connections=2), 60)
    await cache.start()
    try:
        keys = [cache_key("invalidated", str(i)) for i in range(40)]  # on both nodes
        for key in keys:
            await cache.fetch(key, Loader(b"old"))
        await cache.invalidate(*keys)
        assert [await cache.fetch(key, Loader(b"new")) for key in keys] == [b"new"] * 40
    finally:
        await cache.close()


async def test_invalidating_several_keys_makes_each_load_again(caches):
    first, second = caches
    keys = [cache_key("several", str(i)) for i in range(3)]
    for key in keys:
        await first.fetch(key, Loader(b"old"))
    await second.invalidate(*keys)
    assert [await first.fetch(key, Loader(b"new")) for key in keys] == [b"new"] * 3


@pytest.fixture(params=["memory", "memcached"])
async def backend(request, memcached_server):
    store = MemoryCache(100) if request.param == "memory" else \
        Memcached(f"memcached://{memcached_server.address}", timeout=0.5, max_connections=1)
    await store.start()
    yield store
    await store.close()


async def test_a_lease_is_taken_once_and_its_token_fills_the_key_until_a_write_deletes_it(backend, key):
    token = await backend.lease(key, b"\x00lease:\r\nbinary", 5)  # the value is sent by its length
    assert token is not None and await backend.get(key) == b"\x00lease:\r\nbinary"
    assert await backend.lease(key, b"\x00lease:other", 5) is None  # someone holds it: no token
    assert await backend.cas(key, b"filled", token, 60) and await backend.get(key) == b"filled"
    second = await backend.lease(cache_key("lease", "second"), b"\x00lease:2", 5)
    await backend.delete(cache_key("lease", "second"))  # a write came between the lease and the fill
    assert await backend.cas(cache_key("lease", "second"), b"stale", second, 60) is False
    assert await backend.get(cache_key("lease", "second")) is None
