"""Data plugin fixtures: apps on the real MariaDB and memcached, tokens from the local issuer, and
`eventually` to wait for a condition with a deadline instead of sleeping."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import pymysql
import pytest

from devsupport.servers import free_port
from gateway.app import build
from plugins.auth.issuer import LocalIssuer
from plugins.data.api import CACHE, DATABASE
from plugins.profiles.api import PROFILES
from tests.conftest import MYSQL_HOST, MYSQL_PORT, temporary_database


async def eventually(condition, timeout: float = 10.0, what: str = "condition"):
    """Polls `condition()` (sync or async) until it returns something truthy; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)


@dataclass
class App:
    client: object
    services: dict

    @property
    def profiles(self):
        return self.services[PROFILES].resource

    @property
    def cache(self):
        return self.services[CACHE]

    @property
    def database(self):
        return self.services[DATABASE]


@pytest.fixture
def issuer(base_env) -> LocalIssuer:
    return LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem")


@pytest.fixture
def user(issuer):
    """A fresh subject and its Authorization header: tests share the database and memcached."""
    sub = f"user-{uuid.uuid4().hex[:12]}"
    return sub, {"Authorization": f"Bearer {issuer.mint(sub, username=sub.replace('user', 'name'))}"}


@pytest.fixture
def data_env(base_env, mysql_database, memcached_server) -> dict:
    return {**base_env, "GATEWAY_PLUGINS": "health,auth,data,profiles,media", "DATABASE_URL": mysql_database,
            "CACHE_URL": f"memcached://{memcached_server.address}"}


@pytest.fixture
def start_app(aiohttp_client, data_env):
    """`await start_app(VAR=value)`: an app on MariaDB + memcached (or what the overrides say), served
    on its GATEWAY_PORT, so that the local media store's URLs point at it."""

    async def start(**overrides) -> App:
        port = free_port()
        built = build({**data_env, "GATEWAY_PORT": str(port), **overrides})
        return App(await aiohttp_client(built.app, server_kwargs={"port": port}), built.registry.services)

    return start


@pytest.fixture
def admin(mysql_database):
    """A pymysql connection to the test database, for looking at rows behind the app's back."""
    connection = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", autocommit=True,
                                 database=mysql_database.rsplit("/", 1)[1], cursorclass=pymysql.cursors.DictCursor)
    yield connection
    connection.close()


@pytest.fixture
def scratch_database():
    """A second, empty database on the machine's MariaDB; yields its URL."""
    with temporary_database("gw_scratch") as url:
        yield url
