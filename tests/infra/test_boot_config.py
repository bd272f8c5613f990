"""The boot step, files/gateway-config.py, against moto's SSM Parameter Store and Secrets Manager:
the environment file it writes (read back by a shell, as systemd reads it), its permissions, the
CloudFront key file (SecureString parameter, as deploy.sh stores it, or secret), the CloudWatch
agent config, and secrets kept out of the output. The app user's URL carries verified TLS and its
secret passes on; the master user's secret reaches only a migration instance, and what the step
writes is what the app's own settings loader accepts in production. The step never migrates."""
from __future__ import annotations

import importlib.util
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from gateway.app import load_settings
from tests.infra.test_cloudformation import SSM_NAMES, load

FILES = Path(__file__).resolve().parents[2] / "infra" / "packer" / "files"
PREFIX = "/gateway/test/"
REGION = "ap-southeast-1"
PASSWORD = 'p@ss:w/rd"$`\\ #'
MASTER_PASSWORD = "master-Secret-1"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END RSA PRIVATE KEY-----\n"
AWKWARD = 'a "quoted" $HOME `cmd` back\\slash'


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    conf, state = tmp_path / "etc", tmp_path / "state"
    conf.mkdir()
    state.mkdir()
    (conf / "rds-ca-bundle.pem").write_text("baked by provision.sh\n")
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
        db = secrets.create_secret(Name="app", SecretString=json.dumps({"username": "gateway_app", "password": PASSWORD}))
        master = secrets.create_secret(Name="master", SecretString=json.dumps({"username": "gateway_admin",
                                                                             "password": MASTER_PASSWORD}))
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
            "DATABASE_MIGRATOR_SECRET_ARN": master["ARN"],
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
    credentials = "gateway_app:p%40ss%3Aw%2Frd%22%24%60%5C%20%23"
    tls = f"tls=verify&tls_ca={conf / 'rds-ca-bundle.pem'}"
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
        "DATABASE_URL": f"mysql://{credentials}@writer.db.internal:3306/gateway?{tls}",
        "DATABASE_READ_URL": f"mysql://{credentials}@reader.db.internal:3306/gateway?{tls}",
        "DATABASE_SECRET_ARN": parameters.get_parameter(Name=PREFIX + "DATABASE_SECRET_ARN")["Parameter"]["Value"],
        "MEDIA_CDN_PRIVATE_KEY_FILE": str(key_file),
    }
    assert key_file.read_text() == PRIVATE_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    agent = json.loads((conf / "cloudwatch-agent.json").read_text())
    groups = [f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]]
    assert groups == ["/gateway/test/app"]

    printed = capsys.readouterr()
    for secret in ("p@ss", "%40ss", "PRIVATE KEY", AWKWARD, MASTER_PASSWORD):
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


def test_a_secret_is_read_in_the_region_its_arn_names(boot, dirs, parameters):
    """Each region's stack is given its own region's replica of the secrets (deploy.sh
    replica_arn); an ARN of another region is still read where it lives."""
    conf, _ = dirs
    standby = "ap-south-1"
    (conf / "bootstrap.env").write_text(f"GATEWAY_SSM_PREFIX={PREFIX}\nAWS_REGION={standby}\n")
    ssm = boto3.client("ssm", region_name=standby)
    for item in parameters.get_parameters_by_path(Path=PREFIX, WithDecryption=True)["Parameters"]:
        ssm.put_parameter(Name=item["Name"], Value=item["Value"], Type=item["Type"])
    assert boot.main() == 0
    assert shell_env(conf / "gateway.env")["DATABASE_URL"].startswith("mysql://gateway_app:p%40ss")


def test_the_master_users_secret_never_reaches_a_serving_instance(boot, dirs, parameters):
    boot.main()
    env = shell_env(dirs[0] / "gateway.env")
    master = parameters.get_parameter(Name=PREFIX + "DATABASE_MIGRATOR_SECRET_ARN")["Parameter"]["Value"]
    assert master not in env.values() and "DATABASE_MIGRATOR_SECRET_ARN" not in env
    assert "gateway_admin" not in (dirs[0] / "gateway.env").read_text()


def test_a_migration_instance_connects_as_the_master_user_and_aligns_the_app_user(boot, dirs, parameters):
    """deploy.sh's migration instance (user data touches /etc/gateway/migrate): gateway-migrate.service
    migrates as the master user, then `app-user` reads the app user's secret; no replica URL."""
    conf, _ = dirs
    (conf / "migrate").touch()
    boot.main()
    env = shell_env(conf / "gateway.env")
    arn = {name: parameters.get_parameter(Name=PREFIX + name)["Parameter"]["Value"]
           for name in ("DATABASE_SECRET_ARN", "DATABASE_MIGRATOR_SECRET_ARN")}
    assert env["DATABASE_URL"] == (f"mysql://gateway_admin:{MASTER_PASSWORD}@writer.db.internal:3306/gateway"
                                   f"?tls=verify&tls_ca={conf / 'rds-ca-bundle.pem'}")
    assert env["DATABASE_SECRET_ARN"] == arn["DATABASE_MIGRATOR_SECRET_ARN"]  # re-read after the master's rotation
    assert env["DATABASE_APP_SECRET_ARN"] == arn["DATABASE_SECRET_ARN"]
    assert "DATABASE_READ_URL" not in env


def production_parameters(ssm, secrets) -> None:
    """Every parameter region.yaml writes under the prefix (checked against its list), with values of
    the shapes the stacks give them, and deploy.sh's signing key."""
    app = secrets.create_secret(Name="prod-app", SecretString=json.dumps({"username": "gateway_app", "password": PASSWORD}))
    cache_url = load("region")["Resources"]["ParamCacheUrl"]["Properties"]["Value"]["Fn::Sub"]  # as deployed
    master = secrets.create_secret(Name="prod-master", SecretString=json.dumps({"username": "gateway_admin",
                                                                              "password": MASTER_PASSWORD}))
    values = {
        "GATEWAY_DRAIN_SECONDS": "15",
        "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/16",
        "DATABASE_HOST": "gateway-prod-primary.abcdefghijkl.ap-southeast-1.rds.amazonaws.com",
        "DATABASE_PORT": "3306",
        "DATABASE_NAME": "gateway",
        "DATABASE_SECRET_ARN": app["ARN"],
        "DATABASE_MIGRATOR_SECRET_ARN": master["ARN"],
        "CACHE_URL": cache_url.replace("${Cache.ConfigurationEndpoint.Address}", "gw.abc123.cfg.apse1.cache.amazonaws.com")
                              .replace("${Cache.ConfigurationEndpoint.Port}", "11211"),
        "AUTH_COGNITO_REGION": REGION,
        "AUTH_COGNITO_USER_POOL_ID": "ap-southeast-1_AbCdEfGhI",
        "AUTH_JWKS_PARAMETER": "/gateway/test/jwks/cognito",
        "AUTH_COGNITO_CLIENT_IDS": "1example23456789abcdefghij",
        "MEDIA_BUCKET": "gateway-prod-media-123456789012",
        "MEDIA_BUCKET_REGION": REGION,
        "MEDIA_CDN_URL": "https://media.example.com",
        "MEDIA_CDN_KEY_PAIR_ID": "K2JCJMDEHXQW5F",
        "MEDIA_CDN_DISTRIBUTION_ID": "E2QWRUHAPOMQZL",
    }
    assert values.keys() == SSM_NAMES
    for name, value in {**values, "MEDIA_CDN_PRIVATE_KEY": PRIVATE_KEY}.items():
        ssm.put_parameter(Name=PREFIX + name, Value=value, Type="SecureString" if "_KEY" in name else "String")


@pytest.mark.parametrize("instance", ["serving", "migration"])
def test_the_app_accepts_what_the_boot_step_writes_in_production(boot, dirs, instance):
    """The boot step's output, exactly as systemd hands it over, through the app's settings loader
    with GATEWAY_ENV=production: no settings error (production refuses MySQL and memcached beyond
    loopback without ?tls=verify, plugins/data/settings.py), and the TLS is really on."""
    conf, _ = dirs
    if instance == "migration":
        (conf / "migrate").touch()
    with mock_aws():
        production_parameters(boto3.client("ssm", region_name=REGION), boto3.client("secretsmanager", region_name=REGION))
        assert boot.main() == 0
    env = shell_env(conf / "gateway.env")
    assert env["GATEWAY_ENV"] == "production"
    core, plugins, settings = load_settings({**env, "GATEWAY_DATA_DIR": str(dirs[1])})
    data = settings["data"]
    assert "tls=verify" in data.database_url and "tls=verify" in data.cache_url
    assert data.database_secret_arn == env["DATABASE_SECRET_ARN"]
    if instance == "serving":
        assert settings["media"].cdn_distribution_id == "E2QWRUHAPOMQZL"


def test_the_url_names_the_bundle_the_image_bakes():
    """provision.sh installs the RDS CA bundle where the boot step's URLs point (default paths)."""
    code = ("import importlib.util as u; s = u.spec_from_file_location('c', 'infra/packer/files/gateway-config.py'); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print(m.RDS_CA_BUNDLE)")
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONF_DIR"}
    baked = subprocess.run([sys.executable, "-c", code], env=env, cwd=FILES.parents[2], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert baked == "/etc/gateway/rds-ca-bundle.pem"
    assert f"install -m 0644 /tmp/rds-ca-bundle.pem {baked}\n" in (FILES / "provision.sh").read_text()
