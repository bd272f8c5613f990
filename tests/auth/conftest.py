"""Auth fixtures: the probe plugin, RSA keys, a counting JWKS server, a Cognito-mode environment
and a clock for the JWKS penalty box."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

import gateway.loader
import plugins.auth.verifier
from tests.auth.helpers import CLIENT, POOL, REGION, Clock, JwksServer, jwk

PROBE = EntryPoint(name="probe", value="tests.auth.probe:plugin", group="gateway.plugins")


@pytest.fixture(autouse=True)
def probe_plugin(monkeypatch):
    """Makes the probe plugin loadable by name: GATEWAY_PLUGINS=health,auth,probe."""
    real = gateway.loader.entry_points
    monkeypatch.setattr(gateway.loader, "entry_points", lambda group: [*real(group=group), PROBE])


@pytest.fixture(scope="session")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rsa_calls(monkeypatch):
    """Records every RSA signature verification the verifier does."""
    calls = []
    real = plugins.auth.verifier.RS256.verify
    monkeypatch.setattr(plugins.auth.verifier.RS256, "verify", lambda *args: calls.append(args) or real(*args))
    return calls


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("plugins.auth.jwks.monotonic", clock)
    return clock


@pytest.fixture
async def jwks_server(aiohttp_server, signing_key):
    app = web.Application()
    server = JwksServer({"keys": [jwk(signing_key, "k1")]})
    app.router.add_get("/pool/.well-known/jwks.json", server.handle)
    server.server = await aiohttp_server(app)
    return server


@pytest.fixture
def cognito_env(jwks_server) -> dict:
    return {
        "GATEWAY_PLUGINS": "health,auth,probe",
        "AUTH_COGNITO_REGION": REGION,
        "AUTH_COGNITO_USER_POOL_ID": POOL,
        "AUTH_COGNITO_CLIENT_IDS": f"other-client,{CLIENT}",
        "AUTH_JWKS_URL": jwks_server.url,
    }
