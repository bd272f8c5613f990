"""The local issuer (the embedded default): its key file, `python -m gateway token`, and the JWKS
route, with its tokens going through the same verifier as Cognito's."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt

from plugins.auth.issuer import LocalIssuer
from tests.auth.helpers import CLIENT, POOL, REGION, bearer

REPO = Path(__file__).resolve().parents[2]
LOCAL = {"GATEWAY_PLUGINS": "health,auth,probe"}


def gateway(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PATH": os.environ["PATH"], **env})


def test_key_file_is_created_once_with_mode_0600(tmp_path):
    key_file = tmp_path / "keys" / "dev-signing-key.pem"
    first = LocalIssuer(str(key_file))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert LocalIssuer(str(key_file)).jwks() == first.jwks()
    assert [path.name for path in key_file.parent.iterdir()] == ["dev-signing-key.pem"]


def test_workers_starting_together_agree_on_one_key(tmp_path):
    key_file = str(tmp_path / "dev-signing-key.pem")
    with ThreadPoolExecutor(8) as pool:
        issuers = list(pool.map(lambda _: LocalIssuer(key_file), range(8)))
    assert len({issuer.kid for issuer in issuers}) == 1
    assert os.listdir(tmp_path) == ["dev-signing-key.pem"]


def test_minted_tokens_have_the_documented_shape(tmp_path):
    issuer = LocalIssuer(str(tmp_path / "key.pem"))
    token = issuer.mint("user-1", groups=("admins",), scopes=("probe/read",), ttl=60)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256" and header["kid"] == issuer.kid
    assert claims["iss"] == "gateway-local" and claims["client_id"] == "local-dev"
    assert claims["token_use"] == "access" and claims["username"] == "user-1"
    assert claims["cognito:groups"] == ["admins"] and claims["scope"] == "probe/read"
    assert claims["exp"] - claims["iat"] == 60


async def test_jwks_route_and_local_tokens(make_client, base_env):
    client = await make_client(LOCAL)
    key_file = Path(base_env["GATEWAY_DATA_DIR"]) / "dev-signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    issuer = LocalIssuer(str(key_file))

    response = await client.get("/.well-known/jwks.json")
    assert response.status == 200
    assert await response.json() == issuer.jwks()
    assert "d" not in (await response.json())["keys"][0]

    response = await client.get("/probe/admins", headers=bearer(issuer.mint("u1", "ann", groups=("admins",))))
    assert response.status == 200
    assert await response.json() == {"sub": "u1", "username": "ann", "groups": ["admins"], "scopes": [],
                                     "client_id": "local-dev", "token_use": "access"}
    assert (await client.get("/probe/me", headers=bearer(issuer.mint("u1", ttl=-1)))).status == 401
    ready = await (await client.get("/health/ready")).json()
    assert ready["checks"]["jwks"]["status"] == "ok"


async def test_no_jwks_route_in_cognito_mode(make_client):
    client = await make_client({"GATEWAY_PLUGINS": "health,auth", "AUTH_COGNITO_REGION": REGION,
                                "AUTH_COGNITO_USER_POOL_ID": POOL, "AUTH_COGNITO_CLIENT_IDS": CLIENT,
                                "AUTH_JWKS_URL": "http://127.0.0.1:9/jwks.json"})
    assert (await client.get("/.well-known/jwks.json")).status == 404


async def test_token_command_mints_what_the_server_accepts(make_client, base_env):
    env = {**base_env, "GATEWAY_PLUGINS": "health,auth"}
    result = gateway("token", "--sub", "user-7", "--username", "neo", "--groups", "admins, ops", "--ttl", "120",
                     env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    client = await make_client(LOCAL)  # the same data dir, so the same key file
    response = await client.get("/probe/admins", headers=bearer(token))
    assert response.status == 200
    assert await response.json() == {"sub": "user-7", "username": "neo", "groups": ["admins", "ops"],
                                     "scopes": [], "client_id": "local-dev", "token_use": "access"}


def test_token_command_refuses_outside_local_mode(base_env):
    cognito = {**base_env, "GATEWAY_PLUGINS": "health,auth", "AUTH_COGNITO_REGION": REGION,
               "AUTH_COGNITO_USER_POOL_ID": POOL, "AUTH_COGNITO_CLIENT_IDS": CLIENT}
    result = gateway("token", "--sub", "x", env=cognito)
    assert result.returncode == 2 and result.stdout == "" and "Cognito" in result.stderr

    production = {**base_env, "GATEWAY_PLUGINS": "health,auth", "GATEWAY_ENV": "production"}
    result = gateway("token", "--sub", "x", env=production)
    assert result.returncode == 2 and result.stdout == "" and "AUTH_COGNITO_USER_POOL_ID" in result.stderr
    assert not (Path(base_env["GATEWAY_DATA_DIR"]) / "dev-signing-key.pem").exists()

    result = gateway("token", "--sub", "x", "--ttl", "0", env={**base_env, "GATEWAY_PLUGINS": "health,auth"})
    assert result.returncode == 2 and result.stdout == ""
