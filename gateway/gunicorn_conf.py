"""gunicorn settings for production: `gunicorn -c python:gateway.gunicorn_conf 'gateway.app:create_app()'`.

Settings are validated here, in the master, so a bad configuration stops gunicorn with the list of
bad variables instead of a crash loop of workers.
"""
import multiprocessing
import os
import sys

from gunicorn import sock

from gateway.app import load_settings
from gateway.lifecycle import cannot_listen, exit_on_startup_failure
from gateway.loader import PluginError
from gateway.settings import SettingsError

try:
    _core = load_settings()[0]
except (SettingsError, PluginError) as _exc:
    print(_exc.describe() if isinstance(_exc, SettingsError) else f"plugin error: {_exc}", file=sys.stderr)
    sys.exit(2)

bind = [f"{_core.host}:{_core.port}"] + ([f"{_core.host}:{_core.internal_port}"] if _core.internal_port else [])
workers = _core.workers or multiprocessing.cpu_count()
worker_class = "gateway.worker.DrainingWorker"
# Workers must outlive the drain plus the slowest in-flight request before the master kills them.
graceful_timeout = int(_core.drain_seconds) + 31
timeout = 30
# Longer than the ALB's 60 s idle timeout, so the ALB, not us, closes idle connections.
keepalive = 75
accesslog = None  # the app writes its own JSON access line
# gunicorn 25.1+ opens a management socket at one path per user ($HOME/.gunicorn/gunicorn.ctl),
# shared by every gunicorn of that user on the host; nothing here uses it.
control_socket_disable = True
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


def on_starting(arbiter) -> None:
    """Bind the listeners here, once: gunicorn's own bind retries a busy port five times, logging
    each try, before it gives up. Inherited sockets (systemd, a USR2 re-exec) and Unix sockets
    (`-b unix:...`) are left to gunicorn."""
    addresses = arbiter.cfg.address
    if "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ or not all(isinstance(a, tuple) for a in addresses):
        return
    listeners = []
    for host, port in addresses:
        listener = sock.TCP6Socket if ":" in host else sock.TCPSocket
        try:
            listeners.append(listener((host, port), arbiter.cfg, arbiter.log))
        except OSError as exc:
            variable = "GATEWAY_INTERNAL_PORT" if port == _core.internal_port else "GATEWAY_PORT"
            exit_on_startup_failure(cannot_listen(host, port, exc, variable), 1)
    arbiter.LISTENERS = listeners
