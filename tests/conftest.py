"""Shared fixtures: the real servers (memcached, moto, MariaDB) and an app factory.

memcached and the moto server start once per session on free loopback ports and stop at the end.
Each test session gets its own MariaDB database on the machine's server (127.0.0.1:3306)."""
from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pymysql
import pytest

from gateway.app import create_app
from devsupport import servers

MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))


@pytest.fixture(scope="session")
def memcached_server():
    server = servers.memcached().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint():
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = servers.moto().start()
    yield f"http://{server.address}"
    server.stop()


@contextlib.contextmanager
def temporary_database(prefix: str):
    """A new, empty database on the machine's MariaDB, dropped afterwards; yields its mysql:// URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        yield f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def mysql_database():
    """A fresh database for the test session; yields its mysql:// URL."""
    with temporary_database("gw_test") as url:
        yield url


@pytest.fixture
def base_env(tmp_path) -> dict:
    """An environment with embedded defaults rooted in a temporary data directory."""
    return {"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path / "var")}


@pytest.fixture
def make_client(aiohttp_client, base_env):
    """`await make_client({"VAR": "value"})`: a test client for an app built from base_env plus these."""

    async def make(env: dict | None = None, **client_options):
        return await aiohttp_client(create_app({**base_env, **(env or {})}), **client_options)

    return make


FIXTURES = Path(__file__).parent / "fixtures"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def installed(fixture: str, distribution: str, tmp_path_factory):
    """pip-installs tests/fixtures/<fixture> (a separate distribution, built from a copy so the
    build leaves nothing in the repository) and uninstalls it afterwards."""
    source = tmp_path_factory.mktemp(fixture) / fixture
    subprocess.run(["cp", "-r", str(FIXTURES / fixture), str(source)], check=True)
    pip("install", "--no-deps", "--no-build-isolation", str(source))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        pip("uninstall", "-y", distribution)


@pytest.fixture(scope="session")
def sample_plugin(tmp_path_factory):
    """The sample plugin (tests/fixtures/sample-plugin), installed: its entry-point name."""
    with installed("sample-plugin", "gateway-sample-plugin", tmp_path_factory):
        yield "sample"


@pytest.fixture(scope="session")
def notes_plugin(tmp_path_factory):
    """The README's notes plugin (tests/fixtures/notes-plugin), installed: its entry-point name."""
    with installed("notes-plugin", "gateway-notes", tmp_path_factory):
        yield "notes"
