"""The plugin contract: the one place that lists every extension point a plugin has.

A plugin is a `Plugin` value exposed as an entry point in the `gateway.plugins` group:

    NOTES = ServiceKey("notes", NotesService)   # in notes_plugin/api.py, for other plugins to import

    plugin = Plugin(
        name="notes",
        settings=NotesSettings,          # a gateway.settings.SettingsSchema, or None
        requires=(DATABASE, RESOURCES),  # services other plugins provide (their api modules' keys)
        provides=(NOTES,),               # services this one adds with ctx.provide()
        setup=setup,                     # def setup(ctx: SetupContext) -> None
    )

Plugins meet only through services: a `ServiceKey` names one and carries its type, so
`ctx.require(DATABASE)` is typed as the provider's protocol. A provider keeps its keys, protocols
and shared values in its `api` module, the only module of it that another plugin imports.

Work around handlers is a route wrapper (`ctx.route_wrapper`), composed into each route's handler
once at start-up; there are no aiohttp middlewares (see gateway/http.py for why).
`setup` runs once per application, in dependency order, and may only register things on the
`SetupContext`; anything that does I/O goes in a cleanup context (started with the app).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, Mapping, TypeVar

from aiohttp import web
from marshmallow import Schema

from gateway.metrics import METRICS, Counter
from gateway.settings import SettingsSchema

T = TypeVar("T")
Handler = Callable[..., Awaitable[web.StreamResponse]]  # (request) or, with body/query declared, (request, body=, query=)
CleanupContext = Callable[[web.Application], AsyncIterator[None]]
RouteWrapper = Callable[["RouteSpec", Handler], Handler]
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class ServiceKey(Generic[T]):
    """A service's name and type, in the spirit of aiohttp's AppKey: declared once in the provider's
    api module, listed in `provides`/`requires`, and handed to `provide`/`require`."""

    name: str
    type: type[T] | Any = object

    def __repr__(self) -> str:
        return f"<service {self.name!r}>"


@dataclass(frozen=True)
class Plugin:
    name: str
    setup: Callable[["SetupContext"], None]
    settings: type[SettingsSchema] | None = None
    provides: tuple[ServiceKey, ...] = ()
    requires: tuple[ServiceKey, ...] = ()


@dataclass(frozen=True)
class RouteSpec:
    """One route, declared once: it is both served and documented from this."""

    method: str  # "*" for any method
    path: str
    handler: Handler
    summary: str
    plugin: str
    body: type[Schema] | None = None  # validated JSON body, passed to the handler as `body=`
    query: type[Schema] | None = None  # validated query string, passed as `query=`
    responses: Mapping[int, type[Schema] | str] = field(default_factory=dict)
    public: bool = False  # public routes need no credentials
    max_body: int | None = None  # a larger body limit than GATEWAY_MAX_BODY_BYTES (streamed uploads)
    scopes: tuple[str, ...] = ()  # OAuth scopes the caller must hold
    groups: tuple[str, ...] = ()  # groups the caller must belong to (any of)
    tags: tuple[str, ...] = ()
    # The budget a rate limiter counts the route against: None goes by method ("read" for GET, HEAD
    # and OPTIONS, "write" for the others); UNLIMITED for none (health probes).
    limit_class: str | None = None
    documented: bool = True  # in /openapi.json (the core's catch-all is not)


@dataclass(frozen=True)
class ReadinessCheck:
    """A dependency readiness reports on. `probe` raises (or times out) when it is not usable;
    whatever mapping it returns is shown with the check (counters, endpoints)."""

    name: str
    probe: Callable[[], Awaitable[Mapping[str, Any] | None]]
    critical: bool = True
    timeout: float = 1.0


@dataclass(frozen=True)
class Command:
    """A `python -m gateway NAME` subcommand. `run(app, args)` gets the built, not yet started
    application and the parsed arguments, and returns the exit code; it may be a coroutine function."""

    name: str
    help: str
    run: Callable[[web.Application, Any], int | Awaitable[int]]
    arguments: Callable[[Any], Any] = lambda parser: None


@dataclass(frozen=True)
class OrderedWrapper:
    order: int
    wrap: RouteWrapper
    plugin: str


class SetupContext:
    """What a plugin's `setup` receives: its settings and the registries it adds to."""

    def __init__(self, app: web.Application, core: SimpleNamespace, registry: "Registry", plugin: Plugin,
                 settings: SimpleNamespace | None) -> None:
        self.core = core
        self.settings = settings
        self._app = app
        self._registry = registry
        self._plugin = plugin

    def route(self, method: str, path: str, handler: Handler, summary: str, **options: Any) -> RouteSpec:
        spec = RouteSpec(method.upper(), path, handler, summary, self._plugin.name, **options)
        self._registry.routes.append(spec)
        return spec

    def route_wrapper(self, wrap: RouteWrapper, order: int) -> None:
        """`wrap(spec, handler)` returns the handler to serve `spec` with, once, at start-up: work a
        route does not need (auth on a public route) costs it nothing, and work every route needs
        (return `handler` wrapped for every spec) costs one call. Lower `order` wraps further out;
        the core's own wrapper (request id, problem+json, access line) is outside all of them."""
        self._registry.route_wrappers.append(OrderedWrapper(order, wrap, self._plugin.name))

    def after_setup(self, callback: Callable[[], None]) -> None:
        """`callback()` runs once every plugin's `setup` has, in the same order: for work that needs
        what later plugins add through this one's services (the profiles plugin builds its schemas
        and routes there, from the fields other plugins extended it with)."""
        self._registry.after_setup.append(callback)

    def cleanup_ctx(self, context: CleanupContext) -> None:
        self._app.cleanup_ctx.append(context)

    def readiness_check(self, name: str, probe: Callable[[], Awaitable[Any]], *, critical: bool = True,
                        timeout: float = 1.0) -> None:
        self._registry.checks.append(ReadinessCheck(name, probe, critical, timeout))

    def counter(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A count this plugin keeps anyway (`read()` gives its total so far): in each worker's counter
        line a minute (as the change since the previous one) and in /metrics (gateway/metrics.py)."""
        self._app[METRICS].counters.append(Counter(name, help, read))

    def command(self, name: str, help: str, run: Callable[..., Any], **options: Any) -> None:
        self._registry.commands.append(Command(name, help, run, **options))

    def security_scheme(self, name: str, scheme: Mapping[str, Any]) -> None:
        """The OpenAPI security scheme that every non-public route is documented with."""
        self._registry.security_schemes[name] = dict(scheme)

    def provide(self, key: ServiceKey[T], value: T) -> None:
        if key not in self._plugin.provides:
            raise RuntimeError(f"plugin {self._plugin.name!r} provides {key.name!r} without declaring it")
        self._registry.services[key] = value

    def require(self, key: ServiceKey[T]) -> T:
        if key not in self._plugin.requires:
            raise RuntimeError(f"plugin {self._plugin.name!r} uses {key.name!r} without requiring it")
        return self._registry.services[key]


@dataclass
class Registry:
    """Everything the loaded plugins registered, in load order."""

    routes: list[RouteSpec] = field(default_factory=list)
    route_wrappers: list[OrderedWrapper] = field(default_factory=list)
    checks: list[ReadinessCheck] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    security_schemes: dict[str, dict] = field(default_factory=dict)
    services: dict[ServiceKey, Any] = field(default_factory=dict)
    after_setup: list[Callable[[], None]] = field(default_factory=list)

    def wrap(self, spec: RouteSpec, handler: Handler) -> Handler:
        for wrapper in sorted(self.route_wrappers, key=lambda w: w.order, reverse=True):
            handler = wrapper.wrap(spec, handler)
        return handler
