"""The image's install step for real: a fresh wheel of the repo goes through files/install.sh into a
temporary prefix, then the unit's own ExecStartPre and ExecStart lines (prefix substituted) run the
installed app, which must answer 200 on /health/live and stop cleanly on SIGTERM."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
import urllib.request
from pathlib import Path

import boto3
import pymysql
import pytest

from tests.conftest import temporary_database
from tests.data.test_tls import pki, tls_mariadb  # noqa: F401  (fixtures)

from tests.infra import unitfile

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "infra" / "packer" / "files"
IMAGE_PREFIX = "/opt/gateway"
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "var", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a pristine copy of the sources, so the build leaves nothing in the work tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=NOT_SOURCES)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp / "dist",
                    tmp / "src"], check=True, timeout=120)
    (built,) = (tmp / "dist").glob("mobile_gateway-*.whl")
    return built


@pytest.fixture(scope="module")
def prefix(tmp_path_factory, wheel) -> Path:
    prefix = tmp_path_factory.mktemp("opt-gateway")
    env = {**os.environ, "GATEWAY_PREFIX": str(prefix), "GATEWAY_PYTHON": sys.executable}
    subprocess.run(["bash", FILES / "install.sh", wheel, FILES / "constraints.txt"], env=env, check=True,
                   timeout=180)
    return prefix


def test_a_file_other_than_the_pinned_one_is_refused(wheel, tmp_path):
    """pip's hash-checking mode (https://pip.pypa.io/en/stable/topics/secure-installs/): a wheel
    whose digest is not the constraint's is not installed, and install.sh fails."""
    constraints = (FILES / "constraints.txt").read_text()
    tampered = re.sub(r"^(six==\S+) --hash=sha256:[0-9a-f]{64}", r"\1 --hash=sha256:" + "0" * 64, constraints,
                      flags=re.MULTILINE)
    assert tampered != constraints
    (tmp_path / "constraints.txt").write_text(tampered)
    env = {**os.environ, "GATEWAY_PREFIX": str(tmp_path / "prefix"), "GATEWAY_PYTHON": sys.executable}
    result = subprocess.run(["bash", FILES / "install.sh", wheel, tmp_path / "constraints.txt"], env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr


def unit_command(directive: str, prefix: Path, unit: str = "gateway.service", index: int = 0) -> list[str]:
    argv = unitfile.command(unitfile.directives(FILES / unit)[directive][index])
    assert argv[0].startswith(IMAGE_PREFIX + "/")
    return [str(prefix) + argv[0].removeprefix(IMAGE_PREFIX), *argv[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def service_env(tmp_path) -> dict[str, str]:
    """What the unit's environment file would hold, for a development run on loopback."""
    return {
        "PATH": os.environ["PATH"],
        "GATEWAY_ENV": "development",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_DATA_DIR": str(tmp_path / "state"),
        "GATEWAY_WORKERS": "1",
    }


def test_installed_from_the_wheel_not_the_work_tree(prefix, tmp_path):
    python = prefix / "venv" / "bin" / "python"
    where = subprocess.run([python, "-c", "import gateway, plugins; print(gateway.__file__, plugins.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True, env={}).stdout.split()
    assert all(path.startswith(str(prefix / "venv" / "lib")) for path in where), where


def test_unit_command_lines_serve_health(prefix, service_env, tmp_path):
    state = Path(service_env["GATEWAY_DATA_DIR"])
    state.mkdir()
    check = subprocess.run(unit_command("ExecStartPre", prefix), env=service_env, cwd=state,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr

    log = tmp_path / "gateway.log"
    with log.open("w") as out:
        server = subprocess.Popen(unit_command("ExecStart", prefix), env=service_env, cwd=state,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{service_env['GATEWAY_PORT']}/health/live"
        status, body = wait_for(url, server)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
    finally:
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(timeout=60)
    assert returncode == 0, log.read_text()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines and all(json.loads(line) for line in lines), "the unit's stdout must be JSON lines"


def test_migration_unit_migrates_a_real_database_once(prefix, service_env, tmp_path):
    """gateway-migrate.service's migrate command line, from the installed venv, against a fresh MariaDB
    database: applies the migrations, and a second run (another deploy) finds nothing to do. (Its
    app-user line makes MySQL users: tests/data/test_app_user.py runs it on a private server.)"""
    state = Path(service_env["GATEWAY_DATA_DIR"])
    state.mkdir()
    with temporary_database("gw_migrate") as url:
        env = {**service_env, "DATABASE_URL": url}
        runs = [subprocess.run(unit_command("ExecStart", prefix, "gateway-migrate.service"), env=env, cwd=state,
                               capture_output=True, text=True, timeout=120) for _ in range(2)]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
        with pymysql.connect(**mysql_params(url)) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            tables = {row[0] for row in cursor.fetchall()}
    assert len(tables) > 1, tables
    assert "applied" in runs[0].stdout + runs[0].stderr
    assert "0 applied" in runs[1].stdout + runs[1].stderr


def test_migration_unit_then_makes_the_app_user(prefix, service_env, tls_mariadb, pki, moto_endpoint):
    """The unit's second line from the installed venv, `${DATABASE_APP_SECRET_ARN}` expanded from the
    environment file as systemd does, against a private TLS-only mariadbd (it creates a MySQL user)."""
    secret = boto3.client("secretsmanager", region_name="ap-southeast-1", endpoint_url=moto_endpoint).create_secret(
        Name=f"gateway-test/database/app-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": "gateway_app", "password": "app-password"}))["ARN"]
    state = Path(service_env["GATEWAY_DATA_DIR"])
    state.mkdir()
    env = {**service_env, "DATABASE_URL": f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.ca}",
           "DATABASE_APP_SECRET_ARN": secret, "AWS_REGION": "ap-southeast-1", "AWS_ENDPOINT_URL": moto_endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    argv = [arg.replace("${DATABASE_APP_SECRET_ARN}", secret)
            for arg in unit_command("ExecStart", prefix, "gateway-migrate.service", index=1)]
    result = subprocess.run(argv, env=env, cwd=state, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "app-user: gateway_app@% created" in result.stdout


def mysql_params(url: str) -> dict:
    parsed = urllib.parse.urlsplit(url)
    return {"host": parsed.hostname, "port": parsed.port, "user": parsed.username, "password": parsed.password or "",
            "database": parsed.path.lstrip("/")}


def wait_for(url: str, server: subprocess.Popen, seconds: float = 30) -> tuple[int, bytes]:
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, "gunicorn exited before serving"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
