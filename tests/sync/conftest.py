"""Sync fixtures: two gateway instances on the same MariaDB database and memcached (as two servers
behind the load balancer are), identity tokens from the local issuer, and a look at the rows."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from gateway.app import build
from plugins.auth.issuer import LocalIssuer
from plugins.sync.api import SYNC
from tests.data.conftest import admin, issuer  # noqa: F401 (fixtures)


@dataclass
class Instance:
    client: object
    services: dict

    @property
    def sync(self):
        return self.services[SYNC]


@pytest.fixture
def sync_env(base_env, mysql_database, memcached_server) -> dict:
    return {**base_env, "GATEWAY_PLUGINS": "health,auth,data,profiles,sync", "DATABASE_URL": mysql_database,
            "CACHE_URL": f"memcached://{memcached_server.address}"}


@pytest.fixture
def start_instances(aiohttp_client, sync_env):
    """`await start_instances(VAR=value)`: two instances sharing the database, the cache and the signing key."""

    async def start(**overrides) -> list[Instance]:
        instances = []
        for _ in range(2):
            built = build({**sync_env, **overrides})
            instances.append(Instance(await aiohttp_client(built.app), built.registry.services))
        return instances

    return start


@pytest.fixture
async def instances(start_instances) -> list[Instance]:
    return await start_instances()


@pytest.fixture
def device(issuer: LocalIssuer):
    """A fresh identity (tests share the database and memcached) and its Authorization header."""
    identity = f"local:{uuid.uuid4()}"
    return identity, {"Authorization": f"Bearer {issuer.mint_identity(identity, ('api.twitter.com',))}"}
