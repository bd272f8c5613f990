"""Rotation drill: the app user's password changes in a private mariadbd and in its secret (the moto
server's Secrets Manager) under steady load, and every pooled connection is killed so that new ones
must authenticate. The app re-reads the secret on MySQL's 1045 and fails no request, without a
restart; re-reads stay bounded and never log the value."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid

import boto3
import pymysql
import pytest

from devsupport import servers
from plugins.data.secrets import Credentials, SecretsManager
from tests.data.conftest import eventually

REGION = "ap-south-1"  # the standby region reads its own replica of the secret


def app_secret(user: str, password: str) -> str:
    return json.dumps({"username": user, "password": password})


@pytest.fixture
def secrets(moto_endpoint):
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    yield client
    client.close()


@pytest.fixture
def secret(secrets) -> str:
    """A new secret holding gateway_app's first password; its ARN."""
    return secrets.create_secret(Name=f"gateway-test/database/app-{uuid.uuid4().hex[:8]}",
                                 SecretString=app_secret("gateway_app", "first-password"))["ARN"]


@pytest.fixture
def mariadb():
    """A private mariadbd with database `gw` and the least-privilege user gateway_app."""
    server = servers.PrivateMariaDB()
    server.start()
    admin = pymysql.connect(unix_socket=server.socket, user="root", password="", autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE gw CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        cursor.execute("CREATE USER 'gateway_app'@'%%' IDENTIFIED BY %s", ("first-password",))
        cursor.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON gw.* TO 'gateway_app'@'%'")
    server.admin = admin
    yield server
    admin.close()
    server.cleanup()


def rotate(mariadb, secrets, secret: str, password: str) -> list[int]:
    """The operator's rotation, then every connection of the app killed: their ids."""
    with mariadb.admin.cursor() as cursor:
        cursor.execute("ALTER USER 'gateway_app'@'%%' IDENTIFIED BY %s", (password,))
        secrets.put_secret_value(SecretId=secret, SecretString=app_secret("gateway_app", password))
        cursor.execute("SELECT id FROM information_schema.processlist WHERE user = 'gateway_app'")
        killed = [row[0] for row in cursor.fetchall()]
        for connection_id in killed:
            try:
                cursor.execute("KILL CONNECTION %s", (connection_id,))
            except pymysql.err.OperationalError as exc:
                # 1094: it ended between the listing and its KILL (the app drops its idle connections
                # once it sees one of them killed), which is what a KILL would have done
                if exc.args[0] != 1094:
                    raise
    return killed


def app_connections(mariadb) -> set[int]:
    with mariadb.admin.cursor() as cursor:
        cursor.execute("SELECT id FROM information_schema.processlist WHERE user = 'gateway_app'")
        return {row[0] for row in cursor.fetchall()}


async def test_a_rotation_under_load_fails_no_request(start_app, user, mariadb, secrets, secret, moto_endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="plugins.data")  # botocore's DEBUG: see gateway/logs.py
    sub, auth = user
    url = f"mysql://{{}}@127.0.0.1:{mariadb.port}/gw"
    migrator = await start_app(DATABASE_URL=url.format("root"), CACHE_URL="memory://")  # migrations as the master
    await migrator.client.close()
    app = await start_app(DATABASE_URL=url.format("gateway_app:first-password"), CACHE_URL="memory://",
                          DATA_MIGRATE_ON_START="false", DATABASE_POOL_MAX="4", DATABASE_SECRET_ARN=secret,
                          AWS_REGION=REGION, AWS_ENDPOINT_URL=moto_endpoint)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def reader():  # unknown users: every request is a cache miss answered by the database
        while not stop.is_set():
            response = await app.client.get(f"/v1/users/nobody-{uuid.uuid4().hex}", headers=auth)
            statuses.append(response.status)

    load = [asyncio.create_task(reader()) for _ in range(4)]
    try:
        await eventually(lambda: len(statuses) >= 40, what="steady load")
        killed = await asyncio.to_thread(rotate, mariadb, secrets, secret, "second-password")
        assert killed, "the load had no connection open"
        after = len(statuses)
        await eventually(lambda: len(statuses) >= after + 100, what="requests after the rotation")
        fresh = await asyncio.to_thread(app_connections, mariadb)
        assert fresh - set(killed), "no new connection authenticated"
    finally:
        stop.set()
        await asyncio.gather(*load)

    assert set(statuses) == {404}, {status: statuses.count(status) for status in set(statuses)}
    assert (await app.client.patch("/v1/me", json={"bio": "rotated"}, headers=auth)).status == 200
    with pytest.raises(pymysql.err.OperationalError) as refused:  # the old password is really gone
        pymysql.connect(host="127.0.0.1", port=mariadb.port, user="gateway_app", password="first-password")
    assert refused.value.args[0] == 1045
    assert "second-password" not in caplog.text and "first-password" not in caplog.text


async def test_rereads_are_shared_bounded_and_never_log_the_value(secrets, secret, moto_endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="plugins.data")
    manager = SecretsManager(secret, None, moto_endpoint)
    reads = 0

    async def counted() -> str:
        nonlocal reads
        reads += 1
        return await manager.fetch()

    credentials = Credentials("gateway_app", "first-password", counted, interval=0.5)
    try:
        # twenty refused connections at once, and the secret unchanged: one read, nothing newer
        assert not any(await asyncio.gather(*(credentials.renew(0) for _ in range(20))))
        secrets.put_secret_value(SecretId=secret, SecretString=app_secret("gateway_app", "second-password"))
        assert not await credentials.renew(0) and reads == 1  # within the interval: no read at all
        await asyncio.sleep(0.6)  # the interval is the behaviour under test
        assert await credentials.renew(0) and reads == 2
        assert (credentials.user, credentials.password, credentials.version) == ("gateway_app", "second-password", 1)
        assert await credentials.renew(0) and reads == 2  # refused with the old version: retry, no read

        secrets.put_secret_value(SecretId=secret, SecretString=json.dumps({"username": "gateway_app"}))
        await asyncio.sleep(0.6)
        assert not await credentials.renew(1) and reads == 3 and credentials.password == "second-password"
        assert "re-read failed: KeyError" in caplog.text
    finally:
        await manager.close()
    assert "second-password" not in caplog.text
