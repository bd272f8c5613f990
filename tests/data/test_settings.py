"""Data settings: embedded defaults outside production, refused in production, bad URLs named."""
from __future__ import annotations

import ssl

import pytest

from gateway.settings import SettingsError, load
from plugins.data.settings import DataSettings, memcached_nodes, mysql_params


def test_the_embedded_defaults_live_in_the_data_directory():
    settings = load(DataSettings, {"GATEWAY_DATA_DIR": "/srv/gw"})
    assert settings.database_url == "sqlite:////srv/gw/gateway.db"
    assert settings.cache_url == "memory://" and settings.cache_ttl == 300
    assert settings.migrate_on_start is True and settings.database_read_url is None


def test_production_refuses_the_embedded_backends_and_does_not_migrate_on_start():
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {"GATEWAY_ENV": "production"})
    assert set(caught.value.problems) == {"DATABASE_URL", "CACHE_URL"}  # every bad variable at once
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {"GATEWAY_ENV": "production", "DATABASE_URL": "mysql://u:p@db:3306/app?tls=verify"})
    assert set(caught.value.problems) == {"CACHE_URL"}
    settings = load(DataSettings, {"GATEWAY_ENV": "production", "DATABASE_URL": "mysql://u:p@db:3306/app?tls=verify",
                                   "CACHE_URL": "memcached+discovery://cfg.cache.amazonaws.com:11211?tls=verify"})
    assert settings.migrate_on_start is False


PRODUCTION = {"GATEWAY_ENV": "production", "DATABASE_URL": "mysql://u:p@db.internal:3306/app?tls=verify",
              "CACHE_URL": "memcached+discovery://cfg.cache.amazonaws.com:11211?tls=verify"}


@pytest.mark.parametrize("variable, value", [
    ("DATABASE_URL", "mysql://u:p@db.internal:3306/app"),
    ("DATABASE_URL", "mysql://u:p@10.0.3.7:3306/app?tls=required"),
    ("DATABASE_READ_URL", "mysql://u:p@reader.internal:3306/app"),
    ("CACHE_URL", "memcached+discovery://cfg.cache.amazonaws.com:11211"),
    ("CACHE_URL", "memcached://127.0.0.1:11211,cache.internal:11211"),
    ("CACHE_URL", "memcached://cache.internal:11211?tls=required"),
])
def test_production_refuses_plaintext_beyond_loopback_naming_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {**PRODUCTION, variable: value})
    assert set(caught.value.problems) == {variable}
    assert "tls=verify" in caught.value.describe()


def test_production_allows_plaintext_to_loopback_and_tls_anywhere_outside_production():
    loopback = {"DATABASE_URL": "mysql://u:p@127.0.0.1:3306/app", "DATABASE_READ_URL": "mysql://u:p@[::1]:3306/app",
                "CACHE_URL": "memcached://localhost:11211,127.0.0.2:11212"}
    assert load(DataSettings, {**PRODUCTION, **loopback}).cache_url == loopback["CACHE_URL"]
    assert load(DataSettings, {"DATABASE_URL": "mysql://u:p@db.internal:3306/app?tls=required",
                               "CACHE_URL": "memcached://cache.internal:11211"}).cache_url


def test_tls_options_become_client_contexts():
    params = mysql_params("mysql://u:p%40ss@db.internal:3306/app?tls=verify")
    assert params["password"] == "p@ss" and params["host"] == "db.internal"
    assert params["ssl"].check_hostname and params["ssl"].verify_mode == ssl.CERT_REQUIRED
    required = mysql_params("mysql://u:p@db.internal:3306/app?tls=required")["ssl"]
    assert not required.check_hostname and required.verify_mode == ssl.CERT_NONE
    assert mysql_params("mysql://u:p@127.0.0.1:3306/app")["ssl"] is None
    assert memcached_nodes("memcached://h1:11211,h2:11212?tls=verify") == [("h1", 11211), ("h2", 11212)]


@pytest.mark.parametrize("variable, value", [
    ("DATABASE_URL", "postgres://db/app"),
    ("DATABASE_URL", "mysql://db"),
    ("DATABASE_URL", "sqlite://"),
    ("DATABASE_READ_URL", "sqlite:///replica.db"),
    ("CACHE_URL", "redis://cache:6379"),
    ("CACHE_URL", "memcached://h1:11211,h2"),
    ("CACHE_URL", "memcached://"),
    ("CACHE_TTL_SECONDS", "0"),
    ("CACHE_OP_TIMEOUT_SECONDS", "soon"),
    ("DATABASE_URL", "mysql://u:p@db:3306/app?tls=yes"),
    ("DATABASE_URL", "mysql://u:p@db:3306/app?ssl=true"),
    ("DATABASE_URL", "mysql://u:p@db:3306/app?tls=verify&tls_ca=/no/such/ca.pem"),
    ("DATABASE_URL", "mysql://u:p@db:3306/app?tls=required&tls_ca=/etc/hostname"),
    ("CACHE_URL", "memcached://h1:11211?tls=on"),
    ("CACHE_URL", "memcached://?tls=verify"),
    ("DATABASE_SECRET_REREAD_SECONDS", "0"),
])
def test_bad_values_are_named(variable, value):
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {variable: value})
    assert variable in caught.value.problems
