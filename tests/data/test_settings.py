"""Data settings: embedded defaults outside production, refused in production, bad URLs named."""
from __future__ import annotations

import pytest

from gateway.settings import SettingsError, load
from plugins.data.settings import DataSettings


def test_the_embedded_defaults_live_in_the_data_directory():
    settings = load(DataSettings, {"GATEWAY_DATA_DIR": "/srv/gw"})
    assert settings.database_url == "sqlite:////srv/gw/gateway.db"
    assert settings.cache_url == "memory://" and settings.cache_ttl == 300
    assert settings.migrate_on_start is True and settings.database_read_url is None


def test_production_refuses_the_embedded_backends_and_does_not_migrate_on_start():
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {"GATEWAY_ENV": "production"})
    assert set(caught.value.problems) == {"DATABASE_URL"}
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {"GATEWAY_ENV": "production", "DATABASE_URL": "mysql://u:p@db:3306/app"})
    assert set(caught.value.problems) == {"CACHE_URL"}
    settings = load(DataSettings, {"GATEWAY_ENV": "production", "DATABASE_URL": "mysql://u:p@db:3306/app",
                                   "CACHE_URL": "memcached+discovery://cfg.cache.amazonaws.com:11211"})
    assert settings.migrate_on_start is False


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
])
def test_bad_values_are_named(variable, value):
    with pytest.raises(SettingsError) as caught:
        load(DataSettings, {variable: value})
    assert variable in caught.value.problems
