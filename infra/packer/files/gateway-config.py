"""Boot step: the gateway's environment file from SSM Parameter Store and Secrets Manager.

Run once per boot as root by gateway-config.service, with the app venv's Python (its boto3 is the
one pinned for the app). User data leaves /etc/gateway/bootstrap.env with GATEWAY_SSM_PREFIX
(`/gateway/<EnvName>/`) and AWS_REGION. Every parameter directly under the prefix is named after an
app variable (INTERFACE.md) and passes through, except BOOT_PARAMETERS, which this step turns into
DATABASE_URL (and DATABASE_READ_URL), TLS verified against the image's RDS CA bundle, and the
CloudFront signing key's file (from the SecureString MEDIA_CDN_PRIVATE_KEY or a secret).

A serving instance connects as the app's own user (DATABASE_SECRET_ARN, this region's copy, passed
on so that the app re-reads it after a rotation); the master user's secret
(DATABASE_MIGRATOR_SECRET_ARN) never reaches its environment. A deploy's migration instance (user
data created /etc/gateway/migrate) gets the master user's URL and secret instead, and
DATABASE_APP_SECRET_ARN for gateway-migrate.service's `app-user` step. The result goes to
/etc/gateway/gateway.env (mode 0600) for gateway.service or gateway-migrate.service, and the
CloudWatch agent's config gets this environment's log group. No value is ever printed.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import sys
from pathlib import Path
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

CONF_DIR = Path(os.environ.get("GATEWAY_CONF_DIR", "/etc/gateway"))
STATE_DIR = Path(os.environ.get("GATEWAY_STATE_DIR", "/var/lib/gateway"))
USER = os.environ.get("GATEWAY_USER", "gateway")
CLOUDWATCH_TEMPLATE = Path(__file__).with_name("cloudwatch-agent.json")

# The ports are the image's (network.yaml opens them to the ALB): the API, and the internal listener
# with readiness detail and /metrics, which the target group probes and API Gateway never reaches.
FIXED = {"GATEWAY_ENV": "production", "GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "8080",
         "GATEWAY_INTERNAL_PORT": "8081"}
BOOT_PARAMETERS = {
    "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_SECRET_ARN", "DATABASE_MIGRATOR_SECRET_ARN",
    "DATABASE_READ_HOST", "MEDIA_CDN_PRIVATE_KEY", "MEDIA_CDN_PRIVATE_KEY_SECRET_ARN",
}
# Baked by provision.sh; production refuses MySQL beyond loopback without verified TLS.
RDS_CA_BUNDLE = CONF_DIR / "rds-ca-bundle.pem"
NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Bounded so that no single call uses up gateway-config.service's TimeoutStartSec (systemd ends the
# step there in any case): a failure is a line on the console and an instance that never becomes live.
AWS_RETRIES = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)


class ConfigError(Exception):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, optionally quoted; blank lines and comments ignored."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise ConfigError(f"{path}: not KEY=VALUE: {key!r}")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def env_line(key: str, value: str) -> str:
    """One line of a systemd EnvironmentFile, double-quoted the way both systemd and sh read it."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{key}: multi-line values are not allowed")
    escaped = re.sub(r'(["\\`$])', r"\\\1", value)
    return f'{key}="{escaped}"\n'


def fetch_parameters(ssm, prefix: str) -> dict[str, str]:
    params = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, WithDecryption=True):
        for parameter in page["Parameters"]:
            params[parameter["Name"].removeprefix(prefix)] = parameter["Value"]
    bad = sorted(name for name in params if not NAME.fullmatch(name))
    if bad:
        raise ConfigError(f"parameters under {prefix} that are not variable names: {', '.join(bad)}")
    return params


def secret_reader(session):
    """`read(arn)`, with a client in the region the secret's ARN names (each region's stack is given
    its own region's replica; an ARN of the other region would still be read where it lives)."""
    clients = {}

    def read(arn: str) -> str:
        region = arn.split(":")[3] if arn.startswith("arn:") else session.region_name
        if region not in clients:
            clients[region] = session.client("secretsmanager", region_name=region, config=AWS_RETRIES)
        return clients[region].get_secret_value(SecretId=arn)["SecretString"]

    return read


def database_env(params: dict[str, str], secrets, migrating: bool) -> dict[str, str]:
    """The database variables: the app user's URL(s) and secret, or on a migration instance the
    master user's URL and secret and the app user's secret for `app-user`."""
    required = {"DATABASE_HOST", "DATABASE_NAME", "DATABASE_SECRET_ARN"}
    missing = sorted((required | {"DATABASE_MIGRATOR_SECRET_ARN"} if migrating else required) - params.keys())
    if missing:
        raise ConfigError(f"missing parameters: {', '.join(missing)}")
    secret_var = "DATABASE_MIGRATOR_SECRET_ARN" if migrating else "DATABASE_SECRET_ARN"
    try:
        secret = json.loads(secrets(params[secret_var]))
        credentials = f"{quote(secret['username'], safe='')}:{quote(secret['password'], safe='')}"
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{secret_var}: not a JSON secret with username and password") from None
    port, name = params.get("DATABASE_PORT", "3306"), quote(params["DATABASE_NAME"], safe="")
    tls = f"tls=verify&tls_ca={quote(str(RDS_CA_BUNDLE), safe='/')}"
    hosts = {"DATABASE_URL": params["DATABASE_HOST"]}
    if not migrating and params.get("DATABASE_READ_HOST"):
        hosts["DATABASE_READ_URL"] = params["DATABASE_READ_HOST"]
    env = {var: f"mysql://{credentials}@{host}:{port}/{name}?{tls}" for var, host in hosts.items()}
    env["DATABASE_SECRET_ARN"] = params[secret_var]
    if migrating:
        env["DATABASE_APP_SECRET_ARN"] = params["DATABASE_SECRET_ARN"]
    return env


def write_private(path: Path, text: str, owner: str | None = None) -> None:
    """Replace `path` atomically with a 0600 file, never readable by anyone else in between."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if owner:
        account = pwd.getpwnam(owner)
        os.chown(tmp, account.pw_uid, account.pw_gid)
    os.replace(tmp, path)


def render(bootstrap: dict[str, str], params: dict[str, str], secrets) -> dict[str, str]:
    env = {"AWS_REGION": bootstrap["AWS_REGION"]}
    env.update({k: v for k, v in params.items() if k not in BOOT_PARAMETERS})
    env.update(database_env(params, secrets, migrating=(CONF_DIR / "migrate").exists()))
    key = params.get("MEDIA_CDN_PRIVATE_KEY")
    if params.get("MEDIA_CDN_PRIVATE_KEY_SECRET_ARN"):
        key = secrets(params["MEDIA_CDN_PRIVATE_KEY_SECRET_ARN"])
    if key:
        key_file = STATE_DIR / "cloudfront-private-key.pem"
        write_private(key_file, key, owner=USER)
        env["MEDIA_CDN_PRIVATE_KEY_FILE"] = str(key_file)
    env.update(FIXED)
    return env


def main() -> int:
    bootstrap = read_env_file(CONF_DIR / "bootstrap.env")
    prefix, region = bootstrap.get("GATEWAY_SSM_PREFIX", ""), bootstrap.get("AWS_REGION", "")
    if not prefix.startswith("/") or not prefix.endswith("/") or not region:
        raise ConfigError("bootstrap.env needs GATEWAY_SSM_PREFIX=/gateway/<EnvName>/ and AWS_REGION")
    session = boto3.session.Session(region_name=region)
    params = fetch_parameters(session.client("ssm", config=AWS_RETRIES), prefix)
    env = render(bootstrap, params, secret_reader(session))
    write_private(CONF_DIR / "gateway.env", "".join(env_line(k, v) for k, v in sorted(env.items())))
    print(f"gateway-config: wrote {CONF_DIR / 'gateway.env'} from {prefix}: {', '.join(sorted(params))}",
          file=sys.stderr, flush=True)

    # The agent's own placeholders ({instance_id}, ${aws:...}) stay; only the log group prefix is ours.
    cloudwatch = CLOUDWATCH_TEMPLATE.read_text().replace("@LOG_GROUP_PREFIX@", prefix.rstrip("/"))
    (CONF_DIR / "cloudwatch-agent.json").write_text(cloudwatch)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, BotoCoreError, ClientError) as exc:
        print(f"gateway-config: {exc}", file=sys.stderr)
        sys.exit(1)
