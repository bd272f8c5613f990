"""`python -m gateway app-user`, as a deploy's migration instance runs it after `migrate`: against a
private mariadbd that requires TLS (never the shared one: this creates users) and the moto server's
Secrets Manager. The app user is created TLS-only with the app's privileges, reads and writes the
app's tables but cannot CREATE or DROP, a second run aligns a changed password, and nothing printed
carries a password."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import boto3
import pymysql
import pytest

from tests.data.test_tls import pki, tls_mariadb  # noqa: F401  (fixtures)

REGION = "ap-southeast-1"
ODD_PASSWORD = "it's a \\'quoted\\' pass%word; DROP DATABASE gw; --"


@pytest.fixture
def secret(moto_endpoint):
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    arn = client.create_secret(Name=f"gateway-test/database/app-{uuid.uuid4().hex[:8]}",
                               SecretString=json.dumps({"username": "gateway_app", "password": ODD_PASSWORD}))["ARN"]
    yield client, arn
    client.close()


def gateway(tmp_path, database_url: str, moto_endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path),
           "DATABASE_URL": database_url, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto_endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def connect_as_app(server, pki, password: str, tls: bool = True) -> pymysql.Connection:
    """As the app connects: TLS verified against the test CA (or, for the refusal, plaintext:
    PyMySQL would otherwise take the TLS the server offers)."""
    tls_options = {"ssl": {"ca": pki.ca}} if tls else {"ssl_disabled": True}
    return pymysql.connect(host="127.0.0.1", port=server.port, user="gateway_app", password=password, database="gw",
                           autocommit=True, **tls_options)


def test_creates_then_aligns_the_least_privilege_app_user(tls_mariadb, pki, secret, moto_endpoint, tmp_path):
    client, arn = secret
    master = f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.ca}"
    migrated = gateway(tmp_path, master, moto_endpoint, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    first = gateway(tmp_path, master, moto_endpoint, "app-user", "--secret", arn)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "app-user: gateway_app@% created" in first.stdout

    with connect_as_app(tls_mariadb, pki, ODD_PASSWORD) as app, app.cursor() as cursor:
        cursor.execute("INSERT INTO gateway_migrations (plugin, version, name, applied_at) "
                       "VALUES ('probe', 1, 'probe', 'now')")
        cursor.execute("UPDATE gateway_migrations SET name = 'probed' WHERE plugin = 'probe'")
        cursor.execute("SELECT name FROM gateway_migrations WHERE plugin = 'probe' FOR UPDATE")
        assert cursor.fetchall() == (("probed",),)
        cursor.execute("DELETE FROM gateway_migrations WHERE plugin = 'probe'")
        cursor.execute("SELECT GET_LOCK('gateway.probe', 1)")  # the app's named locks need no privilege
        assert cursor.fetchone() == (1,)
        for statement in ("CREATE TABLE intruder (id INT)", "DROP TABLE gateway_migrations",
                          "CREATE TEMPORARY TABLE scratch (id INT)", "ALTER TABLE gateway_migrations ADD x INT",
                          "CREATE DATABASE other", "CREATE USER 'someone'@'%'"):
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cursor.execute(statement)
            assert refused.value.args[0] in (1044, 1142, 1227), statement  # access denied, for each kind
        cursor.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cursor.fetchall())
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON `gw`.* TO `gateway_app`@`%`" in grants

    client.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": "gateway_app",
                                                                   "password": "the-rotated-one"}))
    second = gateway(tmp_path, master, moto_endpoint, "app-user", "--secret", arn)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "app-user: gateway_app@% aligned" in second.stdout
    with connect_as_app(tls_mariadb, pki, "the-rotated-one") as app, app.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM gateway_migrations")
    with pytest.raises(pymysql.err.OperationalError) as old:
        connect_as_app(tls_mariadb, pki, ODD_PASSWORD)
    assert old.value.args[0] == 1045
    for run in (first, second):
        assert "rotated" not in run.stdout + run.stderr and "quoted" not in run.stdout + run.stderr


def test_the_user_requires_tls(tls_mariadb, pki, secret, moto_endpoint, tmp_path):
    """REQUIRE SSL on the user, whatever the server's require_secure_transport says."""
    _, arn = secret
    admin = pymysql.connect(unix_socket=tls_mariadb.socket, user="root", autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute("SET GLOBAL require_secure_transport = OFF")
    try:
        master = f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.ca}"
        assert gateway(tmp_path, master, moto_endpoint, "app-user", "--secret", arn).returncode == 0
        with pytest.raises(pymysql.err.OperationalError) as plaintext:
            connect_as_app(tls_mariadb, pki, ODD_PASSWORD, tls=False)
        assert plaintext.value.args[0] == 1045
        connect_as_app(tls_mariadb, pki, ODD_PASSWORD).close()
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL require_secure_transport = ON")
        admin.close()


def test_refuses_to_touch_the_user_it_connects_as(tls_mariadb, pki, moto_endpoint, tmp_path):
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    arn = client.create_secret(Name=f"gateway-test/database/root-{uuid.uuid4().hex[:8]}",
                               SecretString=json.dumps({"username": "root", "password": "not-for-root"}))["ARN"]
    master = f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.ca}"
    refused = gateway(tmp_path, master, moto_endpoint, "app-user", "--secret", arn)
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[-1] == "app-user: the secret names root, the user DATABASE_URL connects as"
    assert "not-for-root" not in refused.stdout + refused.stderr
