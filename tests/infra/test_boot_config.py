"""The boot step, files/gateway-config.py, against moto's SSM Parameter Store and Secrets Manager:
the environment file it writes (read back by a shell, as systemd reads it), its permissions, the
CloudFront key file (SecureString parameter, as deploy.sh stores it, or secret), the CloudWatch
agent config, and secrets kept out of the output. The step never migrates (deploy.sh does)."""
from __future__ import annotations

import importlib.util
import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

FILES = Path(__file__).resolve().parents[2] / "infra" / "packer" / "files"
PREFIX = "/gateway/test/"
REGION = "ap-southeast-1"
PASSWORD = 'p@ss:w/rd"$`\\ #'
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END RSA PRIVATE KEY-----\n"
AWKWARD = 'a "quoted" $HOME `cmd` back\\slash'


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    conf, state = tmp_path / "etc", tmp_path / "state"
    conf.mkdir()
    state.mkdir()
    (conf / "bootstrap.env").write_text(f"GATEWAY_SSM_PREFIX={PREFIX}\nAWS_REGION={REGION}\n")
    monkeypatch.setenv("GATEWAY_CONF_DIR", str(conf))
    monkeypatch.setenv("GATEWAY_STATE_DIR", str(state))
    monkeypatch.setenv("GATEWAY_USER", pwd.getpwuid(os.getuid()).pw_name)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return conf, state


@pytest.fixture
def boot(dirs):
    """The script as a module, read after the environment above is set."""
    spec = importlib.util.spec_from_file_location("gateway_config", FILES / "gateway-config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def parameters():
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name=REGION)
        db = secrets.create_secret(Name="rds-master", SecretString=json.dumps({"username": "admin", "password": PASSWORD}))
        values = {
            "CACHE_URL": "memcached+discovery://cfg.cache.internal:11211",
            "MEDIA_BUCKET": "media-bucket",
            "MEDIA_CDN_KEY_PAIR_ID": AWKWARD,
            "AUTH_COGNITO_CLIENT_IDS": "client-a,client-b",
            "GATEWAY_DRAIN_SECONDS": "20",
            "DATABASE_HOST": "writer.db.internal",
            "DATABASE_PORT": "3306",
            "DATABASE_NAME": "gateway",
            "DATABASE_SECRET_ARN": db["ARN"],
            "DATABASE_READ_HOST": "reader.db.internal",
            "MEDIA_CDN_PRIVATE_KEY": PRIVATE_KEY,
        }
        ssm = boto3.client("ssm", region_name=REGION)
        for name, value in values.items():
            ssm.put_parameter(Name=PREFIX + name, Value=value, Type="SecureString" if "_KEY" in name else "String")
        ssm.put_parameter(Name=PREFIX + "nested/CACHE_URL", Value="memory://", Type="String")
        ssm.put_parameter(Name="/gateway/other/MEDIA_BUCKET", Value="not-ours", Type="String")
        yield ssm


def shell_env(path: Path) -> dict[str, str]:
    """The file as a POSIX shell reads it; the writer quotes the way systemd's EnvironmentFile parses."""
    out = subprocess.run(["env", "-i", "sh", "-c", f'set -a; . "{path}"; env -u PWD -u SHLVL -u _ -0'],
                         capture_output=True, check=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if item)


def test_writes_the_environment_file(boot, dirs, parameters, capsys):
    conf, state = dirs
    assert boot.main() == 0

    env_file = conf / "gateway.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    key_file = state / "cloudfront-private-key.pem"
    credentials = "admin:p%40ss%3Aw%2Frd%22%24%60%5C%20%23"
    assert shell_env(env_file) == {
        "AWS_REGION": REGION,
        "GATEWAY_ENV": "production",
        "GATEWAY_HOST": "0.0.0.0",
        "GATEWAY_PORT": "8080",
        "GATEWAY_INTERNAL_PORT": "8081",
        "CACHE_URL": "memcached+discovery://cfg.cache.internal:11211",
        "MEDIA_BUCKET": "media-bucket",
        "MEDIA_CDN_KEY_PAIR_ID": AWKWARD,
        "AUTH_COGNITO_CLIENT_IDS": "client-a,client-b",
        "GATEWAY_DRAIN_SECONDS": "20",
        "DATABASE_URL": f"mysql://{credentials}@writer.db.internal:3306/gateway",
        "DATABASE_READ_URL": f"mysql://{credentials}@reader.db.internal:3306/gateway",
        "MEDIA_CDN_PRIVATE_KEY_FILE": str(key_file),
    }
    assert key_file.read_text() == PRIVATE_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    agent = json.loads((conf / "cloudwatch-agent.json").read_text())
    groups = [f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]]
    assert groups == ["/gateway/test/app"]

    printed = capsys.readouterr()
    for secret in ("p@ss", "%40ss", "PRIVATE KEY", AWKWARD):
        assert secret not in printed.out + printed.err


def test_signing_key_from_secrets_manager(boot, dirs, parameters):
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="cdn", SecretString=PRIVATE_KEY)
    parameters.delete_parameter(Name=PREFIX + "MEDIA_CDN_PRIVATE_KEY")
    parameters.put_parameter(Name=PREFIX + "MEDIA_CDN_PRIVATE_KEY_SECRET_ARN", Value=secret["ARN"], Type="String")
    boot.main()
    key_file = dirs[1] / "cloudfront-private-key.pem"
    assert key_file.read_text() == PRIVATE_KEY
    assert shell_env(dirs[0] / "gateway.env")["MEDIA_CDN_PRIVATE_KEY_FILE"] == str(key_file)


def test_refuses_incomplete_configuration(boot, parameters):
    parameters.delete_parameter(Name=PREFIX + "DATABASE_SECRET_ARN")
    with pytest.raises(boot.ConfigError, match="DATABASE_SECRET_ARN"):
        boot.main()


def test_standby_region_reads_the_primary_regions_database_secret(boot, dirs, parameters):
    """ap-south-1's instances run against a replica of the primary's database, whose RDS-managed
    secret lives in ap-southeast-1 only."""
    conf, _ = dirs
    standby = "ap-south-1"
    (conf / "bootstrap.env").write_text(f"GATEWAY_SSM_PREFIX={PREFIX}\nAWS_REGION={standby}\n")
    ssm = boto3.client("ssm", region_name=standby)
    for item in parameters.get_parameters_by_path(Path=PREFIX, WithDecryption=True)["Parameters"]:
        ssm.put_parameter(Name=item["Name"], Value=item["Value"], Type=item["Type"])
    assert boot.main() == 0
    assert shell_env(conf / "gateway.env")["DATABASE_URL"].startswith("mysql://admin:p%40ss")
