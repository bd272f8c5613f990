"""Boot drills: the unit's exact pre-start and start commands (infra/packer/files/gateway.service),
as real processes, while one dependency is down. In each the pre-start exits 0, gunicorn starts,
readiness on the internal port says what is wrong (a critical dependency: 503 fail; another: 200
degraded), and the instance becomes ready by itself once the dependency is back on the same port."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import boto3
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from devsupport import servers
from tests.auth.helpers import CLIENT, POOL, REGION, JwksServer, bearer, claims, jwk, sign
from tests.data.conftest import eventually
from tests.infra import unitfile

UNIT = Path(__file__).parents[2] / "infra/packer/files/gateway.service"
BIN = f"{Path(sys.executable).parent}/"  # this venv's bin, in place of the image's /opt/gateway/venv/bin/
AWS_REGION = "ap-southeast-1"
TIMEOUT = aiohttp.ClientTimeout(total=10)


def unit_command(directive: str) -> list[str]:
    [value] = unitfile.directives(UNIT)[directive]
    return [part.replace("/opt/gateway/venv/bin/", BIN) for part in unitfile.command(value)]


PRE_START, START = unit_command("ExecStartPre"), unit_command("ExecStart")


@dataclass
class Instance:
    server: servers.Server
    internal_port: int
    env: dict
    log: Path

    async def ready(self) -> tuple[int, dict]:
        """Readiness on the internal port: (HTTP status, body with each check)."""
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"http://127.0.0.1:{self.internal_port}/health/ready") as response:
                return response.status, await response.json()

    async def get(self, path: str, headers: dict | None = None) -> int:
        return (await self.get_json(path, headers))[0]

    async def get_json(self, path: str, headers: dict | None = None) -> tuple[int, dict]:
        """On the public port."""
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"http://{self.server.address}{path}", headers=headers) as response:
                return response.status, await response.json(content_type=None)

    async def becomes_ok(self, timeout: float) -> None:
        try:
            await eventually(self.is_ok, timeout, "readiness ok")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answer {await self.ready()}; log:\n{self.tail()}") from None

    async def is_ok(self) -> bool:
        status, body = await self.ready()
        return status == 200 and body["status"] == "ok"

    def tail(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else ""


@contextlib.contextmanager
def booted(env: dict, tmp_path: Path):
    """The unit's ExecStartPre (which must exit 0), then its ExecStart, with the environment the
    EnvironmentFile would give: nothing inherited but PATH."""
    internal_port = servers.free_port()
    env = {"PATH": os.environ["PATH"], "GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path / "var"),
           "GATEWAY_INTERNAL_PORT": str(internal_port), "GATEWAY_WORKERS": "1", "DATA_MIGRATE_ON_START": "false",
           "AWS_REGION": AWS_REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **env}
    pre_start = subprocess.run(PRE_START, env=env, capture_output=True, text=True, timeout=60)
    assert pre_start.returncode == 0, pre_start.stderr
    port = servers.free_port()
    log = tmp_path / "gateway.log"
    server = servers.Server(lambda _: START, port, env={**env, "GATEWAY_PORT": str(port)}, log=str(log))
    server.start()
    try:
        yield Instance(server, internal_port, env, log)
    finally:
        server.stop(signal.SIGTERM)


async def assert_state(instance: Instance, status: str, failing: set[str]) -> dict:
    """Readiness answers `status` (fail: 503, degraded: 200) with exactly the `failing` checks failing."""
    code, body = await instance.ready()
    assert (code, body["status"]) == ((503 if status == "fail" else 200), status), (body, instance.tail())
    assert {name for name, check in body["checks"].items() if check["status"] != "ok"} == failing, body
    assert await instance.get("/health/live") == 200
    assert await instance.get_json("/health/ready") == (code, {"status": status})  # the public port: no detail
    return body


def check_failures(env: dict) -> list[str]:
    """`python -m gateway check`, which must fail with lines, never a traceback: those naming what is wrong."""
    check = subprocess.run([f"{BIN}python", "-m", "gateway", "check"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 1 and "Traceback" not in check.stdout + check.stderr, check.stderr
    *failures, summary = check.stderr.splitlines()
    assert summary == "check: fail", check.stderr
    return failures


# Dependencies: one private MariaDB (migrated) for the module, fresh memcached nodes for each test.

@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    database = servers.PrivateMariaDB()
    database.start()
    url = database.create_database("gateway")
    migrate = subprocess.run([f"{BIN}python", "-m", "gateway", "migrate"], capture_output=True, text=True,
                             env={**os.environ, "GATEWAY_ENV": "test", "DATABASE_URL": url,
                                  "GATEWAY_DATA_DIR": str(tmp_path_factory.mktemp("migrate"))})
    assert migrate.returncode == 0, migrate.stderr
    yield database, url
    database.cleanup()


@pytest.fixture
def memcached_nodes():
    nodes = [servers.memcached().start(), servers.memcached().start()]
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
def env(mariadb, memcached_nodes) -> dict:
    return {"DATABASE_URL": mariadb[1], "CACHE_URL": f"memcached://{memcached_nodes[0].address}"}


async def test_memcached_down(env, memcached_nodes, tmp_path):
    memcached_nodes[0].stop()
    with booted(env, tmp_path) as instance:
        await assert_state(instance, "degraded", {"cache"})
        memcached_nodes[0].start()
        await instance.becomes_ok(10)


async def test_one_of_two_memcached_nodes_down(env, memcached_nodes, tmp_path):
    memcached_nodes[1].stop()
    with booted({**env, "CACHE_URL": f"memcached://{memcached_nodes[0].address},{memcached_nodes[1].address}"},
                tmp_path) as instance:
        body = await assert_state(instance, "degraded", {"cache"})
        error = body["checks"]["cache"]["error"]  # "memcached unreachable: HOST:PORT (why), ..."
        assert f"{memcached_nodes[1].address} (" in error and f"{memcached_nodes[0].address} (" not in error
        memcached_nodes[1].start()
        await instance.becomes_ok(10)


async def test_s3_endpoint_unreachable(env, tmp_path):
    s3 = servers.moto()  # its port, not yet listening
    try:
        with booted({**env, "MEDIA_BUCKET": "drill-media", "AWS_ENDPOINT_URL": f"http://{s3.address}"},
                    tmp_path) as instance:
            await assert_state(instance, "degraded", {"media"})
            s3.start()
            boto3.client("s3", endpoint_url=f"http://{s3.address}", region_name=AWS_REGION,
                         aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(
                Bucket="drill-media", CreateBucketConfiguration={"LocationConstraint": AWS_REGION})
            await instance.becomes_ok(10)
    finally:
        s3.stop()


async def test_database_down(env, mariadb, tmp_path):
    database = mariadb[0]
    database.stop()
    try:
        with booted({**env, "DATABASE_CONNECT_TIMEOUT_SECONDS": "1"}, tmp_path) as instance:
            await assert_state(instance, "fail", {"database", "schema"})
            assert {line.split(":")[0] for line in check_failures(instance.env)} == {"database", "schema"}
            database.start()
            await instance.becomes_ok(15)
    finally:
        if database.process is None:
            database.start()


async def test_unmigrated_schema_is_not_ready_and_check_names_the_migrations(env, mariadb, tmp_path):
    env = {**env, "DATABASE_URL": mariadb[0].create_database("unmigrated")}
    with booted(env, tmp_path) as instance:
        body = await assert_state(instance, "fail", {"schema"})
        [line] = check_failures(instance.env)
        assert line.startswith("schema: ") and "pending migrations" in line
        for migration in ("accounts 0001", "profiles 0001", "media 0001", "media 0002"):
            assert migration in line
        assert body["checks"]["schema"]["error"].endswith(line.split("pending migrations", 1)[1])
        # The deploy's migration step, run once from elsewhere: the instance becomes ready by itself.
        migrate = subprocess.run([f"{BIN}python", "-m", "gateway", "migrate"], env=instance.env, capture_output=True,
                                 text=True, timeout=60)
        assert migrate.returncode == 0, migrate.stderr
        await instance.becomes_ok(10)


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def cognito(jwks_url: str) -> dict:
    return {"AUTH_COGNITO_REGION": REGION, "AUTH_COGNITO_USER_POOL_ID": POOL, "AUTH_COGNITO_CLIENT_IDS": CLIENT,
            "AUTH_JWKS_URL": jwks_url}


async def test_jwks_endpoint_unreachable(env, signing_key, aiohttp_server, tmp_path):
    port = servers.free_port()  # the JWKS endpoint's, nothing listening yet
    with booted({**env, **cognito(f"http://127.0.0.1:{port}/pool/.well-known/jwks.json")}, tmp_path) as instance:
        await assert_state(instance, "fail", {"jwks"})
        token = bearer(sign(signing_key, claims()))
        assert await instance.get("/v1/me", token) == 401
        jwks = JwksServer({"keys": [jwk(signing_key, "k1")]})
        app = web.Application()
        app.router.add_get("/pool/.well-known/jwks.json", jwks.handle)
        await aiohttp_server(app, port=port)
        # Within one penalty period (plugins/auth/jwks.py) of the start-up fetch.
        await instance.becomes_ok(15)
        assert await instance.get("/v1/me", token) == 200


async def test_jwks_copy_in_ssm_when_the_url_is_unreachable(env, signing_key, moto_endpoint, tmp_path):
    parameter = f"/gateway/jwks-{tmp_path.name}"
    boto3.client("ssm", endpoint_url=moto_endpoint, region_name=AWS_REGION, aws_access_key_id="testing",
                 aws_secret_access_key="testing").put_parameter(
        Name=parameter, Type="String", Value=json.dumps({"keys": [jwk(signing_key, "k1")]}))
    dead = f"http://127.0.0.1:{servers.free_port()}/pool/.well-known/jwks.json"
    with booted({**env, **cognito(dead), "AUTH_JWKS_PARAMETER": parameter, "AWS_ENDPOINT_URL": moto_endpoint},
                tmp_path) as instance:
        await instance.becomes_ok(10)
        assert await instance.get("/v1/me", bearer(sign(signing_key, claims()))) == 200
        assert await instance.get("/v1/me", bearer(sign(signing_key, claims(), kid="k2"))) == 401
