"""Auth settings: Cognito all-or-nothing, production refusals, JWKS URL and leeway bounds."""
from __future__ import annotations

import pytest

from gateway import settings
from gateway.app import load_settings
from plugins.auth.settings import AuthSettings
from tests.auth.helpers import CLIENT, POOL, REGION

COGNITO = {"AUTH_COGNITO_REGION": REGION, "AUTH_COGNITO_USER_POOL_ID": POOL, "AUTH_COGNITO_CLIENT_IDS": CLIENT}


def problems(env: dict) -> dict:
    with pytest.raises(settings.SettingsError) as error:
        settings.load(AuthSettings, env)
    return error.value.problems


def test_defaults_are_local_mode():
    loaded = settings.load(AuthSettings, {})
    assert loaded.user_pool_id is None and loaded.token_use == "access" and loaded.leeway_seconds == 0


def test_cognito_mode():
    loaded = settings.load(AuthSettings, {**COGNITO, "AUTH_COGNITO_CLIENT_IDS": "a, b", "GATEWAY_ENV": "production"})
    assert loaded.client_ids == ("a", "b") and loaded.production


def test_partial_cognito_names_what_is_missing():
    found = problems({"AUTH_COGNITO_USER_POOL_ID": POOL})
    assert set(found) == {"AUTH_COGNITO_REGION", "AUTH_COGNITO_CLIENT_IDS"}
    assert "AUTH_COGNITO_REGION, AUTH_COGNITO_CLIENT_IDS" in found["AUTH_COGNITO_REGION"][0]


def test_empty_variables_count_as_unset():
    assert set(problems({**COGNITO, "AUTH_COGNITO_CLIENT_IDS": ""})) == {"AUTH_COGNITO_CLIENT_IDS"}


def test_local_issuer_refused_in_production():
    found = problems({"GATEWAY_ENV": "production"})
    assert set(found) == set(COGNITO)
    assert "local token issuer" in found["AUTH_COGNITO_USER_POOL_ID"][0]


@pytest.mark.parametrize("env, variable", [
    ({"AUTH_COGNITO_REGION": "Europe"}, "AUTH_COGNITO_REGION"),
    ({"AUTH_COGNITO_USER_POOL_ID": "no-underscore"}, "AUTH_COGNITO_USER_POOL_ID"),
    ({"AUTH_COGNITO_USER_POOL_ID": "us-east-1_Abc"}, "AUTH_COGNITO_USER_POOL_ID"),  # another region's pool
    ({"AUTH_TOKEN_USE": "refresh"}, "AUTH_TOKEN_USE"),
    ({"AUTH_LEEWAY_SECONDS": "61"}, "AUTH_LEEWAY_SECONDS"),
    ({"AUTH_LEEWAY_SECONDS": "-1"}, "AUTH_LEEWAY_SECONDS"),
    ({"AUTH_JWKS_URL": "ftp://example.com/jwks.json"}, "AUTH_JWKS_URL"),
    ({"AUTH_JWKS_URL": "not a url"}, "AUTH_JWKS_URL"),
])
def test_bad_values(env, variable):
    assert variable in problems({**COGNITO, **env})


@pytest.mark.parametrize("url, accepted", [
    (f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}/.well-known/jwks.json", True),
    ("http://cognito-idp.eu-west-1.amazonaws.com/jwks.json", False),
    ("https://localhost:5000/jwks.json", False),
    ("https://amazonaws.com.attacker.example/jwks.json", False),
    ("https://cognito-idp.eu-west-1.amazonaws.com@attacker.example/jwks.json", False),
])
def test_jwks_url_under_production(url, accepted):
    env = {**COGNITO, "GATEWAY_ENV": "production", "AUTH_JWKS_URL": url}
    if accepted:
        assert settings.load(AuthSettings, env).jwks_url == url
    else:
        assert "AUTH_JWKS_URL" in problems(env)


def test_emulator_jwks_url_outside_production_and_not_in_local_mode():
    assert settings.load(AuthSettings, {**COGNITO, "AUTH_JWKS_URL": "http://127.0.0.1:5000/p/jwks.json"}).jwks_url
    assert "AUTH_JWKS_URL" in problems({"AUTH_JWKS_URL": "http://127.0.0.1:5000/p/jwks.json"})


def test_problems_stop_the_start_up(base_env):
    with pytest.raises(settings.SettingsError) as error:
        load_settings({**base_env, "GATEWAY_PLUGINS": "health,auth", "GATEWAY_ENV": "production",
                       "AUTH_LEEWAY_SECONDS": "600"})
    assert "AUTH_LEEWAY_SECONDS" in error.value.problems
