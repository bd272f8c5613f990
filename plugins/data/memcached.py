"""The memcached cache backend: emcache with autobatching, several nodes, ElastiCache auto
discovery, TLS (`?tls=verify`, ElastiCache in-transit encryption), and one documented patch of
emcache's internals (`fail_lost_batches`, below).

TLS with `tls=verify` checks the chain and the host name against the system trust store; with
`tls_ca=` emcache 1.3.3 checks the chain against the system store plus that CA but not the host name
(its context for an extra CA leaves `check_hostname` off), which is for test CAs only."""
from __future__ import annotations

import asyncio

import emcache
from emcache import autobatching as emcache_autobatching
from emcache._cython import cyemcache
from emcache.protocol import DELETED, NOT_FOUND, create_protocol
from emcache.timeout import OpTimeout

from plugins.data.settings import memcached_nodes, url_options


def fail_lost_batches() -> None:
    """emcache's autobatching resolves its callers' futures on success and on its own timeout only:
    when a node's connection fails mid-batch (memcached killed, connection refused) they would wait
    forever. Fail them with the batch's error instead. A guard per operation (asyncio.timeout) did
    the same at an eighth of the cache-hit path's cost; emcache is pinned, and the memcached-killed
    drills fail if this stops working."""
    original = emcache_autobatching._InflightBatches._batch_operation

    async def batch_operation(self, node, keys) -> None:
        try:
            await original(self, node, keys)
        except Exception as exc:
            for key in keys:
                for future in self._ops.pop(key, ()):
                    if not future.done():
                        future.set_exception(exc)
            self._maybe_signal_termination()

    emcache_autobatching._InflightBatches._batch_operation = batch_operation


fail_lost_batches()


def checked(*keys: bytes) -> tuple[bytes, ...]:
    """The keys, if memcached can take each (a malformed line would be answered, `noreply` or not)."""
    if not all(cyemcache.is_key_valid(key) for key in keys):
        raise ValueError("a key memcached cannot take")
    return keys


class Memcached:
    """emcache with autobatching (concurrent gets become one multi-get per node), a timeout on every
    operation, several nodes by rendezvous hashing, and ElastiCache auto discovery."""

    def __init__(self, url: str, timeout: float, max_connections: int) -> None:
        self.discovery = url.startswith("memcached+discovery:")
        self.nodes = [emcache.MemcachedHostAddress(host, port) for host, port in memcached_nodes(url)]
        self.timeout = timeout
        self.max_connections = max_connections
        options = url_options(url)
        self.tls = {"ssl": "tls" in options, "ssl_verify": options.get("tls") == "verify",
                    "ssl_extra_ca": options.get("tls_ca")}
        self.client: emcache.Client | None = None
        self._discovered = not self.discovery

    async def start(self) -> None:
        self.client = await emcache.create_client(
            self.nodes, timeout=self.timeout, connection_timeout=1.0, max_connections=self.max_connections,
            # Unhealthy nodes stay in the ring: purging them re-homes their keys to other nodes, which
            # can serve values whose invalidation went elsewhere (and, with every node purged, emcache's
            # batched gets never return). A dead node's keys just miss, and the breaker bounds the cost.
            autobatching=True, purge_unhealthy_nodes=False, autodiscovery=self.discovery, autodiscovery_timeout=1.0,
            **self.tls,
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    @property
    def _client(self) -> emcache.Client:
        # Until auto discovery has found nodes, emcache's batches fail inside the event loop and their
        # callers wait forever: fail them here instead.
        if not self._discovered:
            if not self.client.cluster_managment().nodes():
                raise ConnectionError("no memcached nodes discovered yet")
            self._discovered = True
        return self.client

    async def get(self, key: bytes) -> bytes | None:
        item = await self._client.get(key)
        return item.value if item is not None else None

    async def lease(self, key: bytes, value: bytes, ttl: int) -> int | None:
        """`value` stored if the key has none, and its cas token; None if the key holds something. One
        round trip: memcached's meta set in add mode, answering the cas (memcached 1.6; emcache has no
        meta commands, so the line is written on one of its connections, see `_command`)."""
        answer = await self._command(self._client._cluster.pick_node(*checked(key)),
                                     b"ms %b %d T%d ME c\r\n%b\r\n" % (key, len(value), ttl, value))
        status, *flags = answer.split()
        if status == b"NS":
            return None
        if status != b"HD":
            raise emcache.CommandError(f"ms answered {answer!r}")
        return next(int(flag[1:]) for flag in flags if flag.startswith(b"c"))

    async def cas(self, key: bytes, value: bytes, token: int, ttl: int) -> bool:
        try:
            await self._client.cas(key, value, token, exptime=ttl)
            return True
        except emcache.StorageCommandError:  # EXISTS (someone else's lease) or NOT_FOUND (deleted)
            return False

    async def set(self, key: bytes, value: bytes, ttl: int) -> None:
        await self._client.set(key, value, exptime=ttl)

    async def delete(self, *keys: bytes) -> None:
        """The keys gone, those of one node in one round trip: each but the last sent `noreply`, and
        the last acknowledged, which memcached does after the others (a connection's commands run in
        order). emcache has no multi-key delete: see `_command`."""
        for node, on_node in self._client._cluster.pick_nodes(checked(*keys)).items():
            commands = b"".join(b"delete %b noreply\r\n" % key for key in on_node[:-1]) + b"delete %b\r\n" % on_node[-1]
            result = await self._command(node, commands)
            if result not in (DELETED, NOT_FOUND):
                raise emcache.CommandError(f"delete answered {result!r}")

    async def _command(self, node, data: bytes) -> bytes:
        """What emcache 1.3.3 (pinned) does for one of its own commands, for commands it lacks: `data`
        written on one of its connections to `node` under its timeout, and the one-line answer."""
        async with OpTimeout(self.timeout, self._client._loop):
            async with node.connection() as connection:
                return await connection._extract_one_line_data(data)

    async def incr(self, key: bytes, delta: int, ttl: int) -> int:
        try:
            return await self._client.increment(key, delta)
        except emcache.NotFoundCommandError:
            pass
        try:
            await self._client.add(key, str(delta).encode(), exptime=ttl)
            return delta
        except emcache.NotStoredStorageCommandError:  # another process created it in between
            return await self._client.increment(key, delta)

    async def probe(self) -> dict:
        nodes = self._client.cluster_managment().nodes()
        answers = await asyncio.gather(*(self._client.version(node) for node in nodes), return_exceptions=True)
        down = [n for n, answer in zip(nodes, answers) if isinstance(answer, BaseException)]
        if down or not nodes:
            reasons = await asyncio.gather(*(self._why(node) for node in down))
            raise ConnectionError("memcached unreachable: " + (", ".join(
                f"{n.address}:{n.port} ({reason})" for n, reason in zip(down, reasons)) or "no nodes discovered"))
        return {"backend": "memcached", "nodes": len(nodes)}

    async def _why(self, node: emcache.MemcachedHostAddress) -> str:
        """Why a node does not answer, from one connection made as emcache makes them: its pool only
        logs the reason (a refused connection, a TLS certificate that does not verify)."""
        try:
            connection = await create_protocol(node, **self.tls, username=None, password=None, timeout=0.5)
        except asyncio.TimeoutError:
            return "no connection within 0.5s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        connection.close()
        return "connects, but did not answer in time"
