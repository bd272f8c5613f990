"""gunicorn settings for production: `gunicorn -c python:gateway.gunicorn_conf 'gateway.app:create_app()'`.

Settings are validated here, in the master, so a bad configuration stops gunicorn with the list of
bad variables instead of a crash loop of workers.
"""
import multiprocessing
import sys

from gateway.app import load_settings
from gateway.loader import PluginError
from gateway.settings import SettingsError

try:
    _core = load_settings()[0]
except (SettingsError, PluginError) as _exc:
    print(_exc.describe() if isinstance(_exc, SettingsError) else f"plugin error: {_exc}", file=sys.stderr)
    sys.exit(2)

bind = f"{_core.host}:{_core.port}"
workers = _core.workers or multiprocessing.cpu_count()
worker_class = "gateway.worker.DrainingWorker"
# Workers must outlive the drain plus the slowest in-flight request before the master kills them.
graceful_timeout = int(_core.drain_seconds) + 31
timeout = 30
# Longer than the ALB's 60 s idle timeout, so the ALB, not us, closes idle connections.
keepalive = 75
accesslog = None  # the app writes its own JSON access line
errorlog = "-"
loglevel = _core.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "gateway.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"level": _core.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _core.log_level, "handlers": ["stdout"], "propagate": False},
        "aiohttp.access": {"level": "CRITICAL", "propagate": False},
    },
}
