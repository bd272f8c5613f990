"""The application factory: settings, then plugins in dependency order, then the core's wiring.

`create_app()` is what gunicorn and `python -m gateway serve` run; `build()` also returns the
registry, for the CLI and the OpenAPI document.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Mapping

from aiohttp import web

from gateway import openapi, settings
from gateway.accesslog import AccessLog
from gateway.cors import cors_wrapper
from gateway.http import core_wrapper, no_route
from gateway.lifecycle import LIFECYCLE, Lifecycle
from gateway.metrics import METRICS, Counter, Metrics, counter_lines
from gateway.loader import PluginError, discover
from gateway.plugin import OrderedWrapper, Plugin, Registry, RouteSpec, SetupContext
from gateway.readiness import CHECKS
from gateway.routing import add_routes

OPENAPI = web.AppKey("openapi", dict)
CORE = web.AppKey("core_settings", SimpleNamespace)
ACCESS_LOG = web.AppKey("access_log", AccessLog)


@dataclass
class Built:
    app: web.Application
    registry: Registry
    core: SimpleNamespace


def load_settings(environ: Mapping[str, str] | None = None) -> tuple[SimpleNamespace, list[Plugin], dict]:
    """Core settings, the ordered plugins and each plugin's settings; every problem reported at once."""
    problems: dict[str, list[str]] = {}
    try:
        core = settings.load(settings.CoreSettings, environ)
    except settings.SettingsError as exc:
        problems.update(exc.problems)
        core = None
    try:
        plugins = discover(core.plugins if core else settings.plugin_names(environ))
    except PluginError as exc:
        if not problems:
            raise
        raise settings.SettingsError({**problems, "GATEWAY_PLUGINS": [str(exc)]}) from None
    plugin_settings = {}
    for plugin in plugins:
        if plugin.settings is None:
            continue
        try:
            plugin_settings[plugin.name] = settings.load(plugin.settings, environ)
        except settings.SettingsError as exc:
            problems.update(exc.problems)
    if problems:
        raise settings.SettingsError(problems)
    return core, plugins, plugin_settings


def build(environ: Mapping[str, str] | None = None) -> Built:
    core, plugins, plugin_settings = load_settings(environ)
    # Headers up to 16 KiB reach the app, so an oversized bearer token gets the auth plugin's 401
    # rather than a bare parser error; beyond that aiohttp refuses the request itself.
    app = web.Application(client_max_size=core.max_body_bytes, handler_args={"max_field_size": 16384})
    registry = Registry()
    lifecycle = Lifecycle(core.drain_seconds)
    app[LIFECYCLE] = lifecycle
    app[CORE] = core
    app[METRICS] = Metrics()
    for plugin in plugins:
        plugin.setup(SetupContext(app, core, registry, plugin, plugin_settings.get(plugin.name)))
    for callback in registry.after_setup:
        callback()

    # The core's own routes, after every plugin's: the catch-all is matched last.
    registry.routes.append(RouteSpec("GET", "/openapi.json", serve_openapi, "This API's OpenAPI document", "core",
                                     public=True, documented=False))
    registry.routes.append(RouteSpec("*", "/{path:.*}", no_route, "Anything else: 404, 405, or OPTIONS: 204", "core",
                                     public=True, documented=False))
    if core.cors_allowed_origins:  # outside every plugin's wrapper: refusals carry it too
        registry.route_wrappers.append(OrderedWrapper(0, cors_wrapper(core.cors_allowed_origins, core.cors_max_age),
                                                      "core"))
    access_log = AccessLog()
    metrics = app[METRICS]
    metrics.counters.append(Counter("draining", "1 while this worker drains", lambda: int(lifecycle.draining),
                                    cumulative=False))
    core_wrap = core_wrapper(lifecycle, access_log, metrics, core.max_body_bytes, core.trusted_proxies)
    add_routes(app, registry, core.body_timeout_seconds, core_wrap)
    app[CHECKS] = tuple(registry.checks)
    app[OPENAPI] = openapi.build(registry)
    app[ACCESS_LOG] = access_log
    # exits run in reverse: the access log's final flush comes after the counter line's last line
    app.cleanup_ctx.extend([access_log.context, counter_lines(access_log.append)])
    app.on_startup.append(freeze_heap)
    return Built(app, registry, core)


async def freeze_heap(app: web.Application) -> None:
    """After start-up (plugins' clients and pools included), move every object to the collector's
    permanent generation: full collections then scan only what requests allocate, not botocore's
    and the plugins' long-lived objects, which otherwise stall the loop for tens of milliseconds."""
    gc.collect()
    gc.freeze()


async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def create_app(environ: Mapping[str, str] | None = None) -> web.Application:
    return build(environ).app
