"""Settings are validated at start-up; every bad variable is named, and no traceback is shown."""
import subprocess
import sys

import pytest

from gateway.app import load_settings
from gateway.settings import SettingsError


def test_defaults_load_with_an_empty_environment():
    core, plugins, _ = load_settings({"GATEWAY_PLUGINS": "health"})
    assert (core.host, core.port, core.max_body_bytes, core.drain_seconds) == ("127.0.0.1", 8080, 1048576, 0.0)
    assert core.environment == "development" and not core.production
    assert [p.name for p in plugins] == ["health"]


def test_every_bad_variable_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        load_settings({
            "GATEWAY_PLUGINS": "health",
            "GATEWAY_PORT": "eighty",
            "GATEWAY_ENV": "staging",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8,not-a-cidr",
            "GATEWAY_DRAIN_SECONDS": "-1",
            "HEALTH_READY_CACHE_SECONDS": "999",
        })
    assert set(caught.value.problems) == {
        "GATEWAY_PORT", "GATEWAY_ENV", "GATEWAY_TRUSTED_PROXIES", "GATEWAY_DRAIN_SECONDS", "HEALTH_READY_CACHE_SECONDS",
    }
    assert "not-a-cidr" in caught.value.problems["GATEWAY_TRUSTED_PROXIES"][0]


def test_an_empty_variable_means_the_default():
    core, _, _ = load_settings({"GATEWAY_PLUGINS": "health", "GATEWAY_PORT": ""})
    assert core.port == 8080


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "gateway", "openapi"],
    [sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", "gateway.app:create_app()"],
])
def test_bad_settings_stop_start_up_with_a_message_and_no_traceback(command, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PLUGINS": "health", "GATEWAY_PORT": "0x50", "GATEWAY_DATA_DIR": str(tmp_path)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "GATEWAY_PORT: Not a valid integer." in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
