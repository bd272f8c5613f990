"""Finds plugins through the `gateway.plugins` entry-point group and orders them by requirement."""
from __future__ import annotations

from importlib.metadata import entry_points

from gateway.plugin import Plugin, ServiceKey

GROUP = "gateway.plugins"


class PluginError(Exception):
    """A plugin that cannot be loaded, or requirements that cannot be met."""


def discover(names: tuple[str, ...]) -> list[Plugin]:
    """The named plugins, in an order where every plugin comes after those it requires."""
    available = {ep.name: ep for ep in entry_points(group=GROUP)}
    unknown = [name for name in names if name not in available]
    if unknown:
        raise PluginError(
            f"unknown plugin(s) {', '.join(unknown)} in GATEWAY_PLUGINS; installed: {', '.join(sorted(available))}"
        )
    plugins = []
    for name in dict.fromkeys(names):
        try:
            plugin = available[name].load()
        except Exception as exc:  # an import error in a plugin must name the plugin
            raise PluginError(f"plugin {name!r} failed to import: {exc!r}") from exc
        if not isinstance(plugin, Plugin) or plugin.name != name:
            raise PluginError(f"entry point {name!r} does not point at a Plugin named {name!r}")
        plugins.append(plugin)
    return order(plugins)


def order(plugins: list[Plugin]) -> list[Plugin]:
    """Topological order over provides/requires; stable with respect to the given order."""
    for plugin in plugins:
        for service in (*plugin.provides, *plugin.requires):
            if not isinstance(service, ServiceKey):
                raise PluginError(f"plugin {plugin.name!r} names service {service!r} by a string: use the "
                                  "provider's ServiceKey (for example plugins.data.api.DATABASE)")
    providers: dict[ServiceKey, Plugin] = {}
    for plugin in plugins:
        for service in plugin.provides:
            if service in providers:
                raise PluginError(f"{service.name!r} is provided by both {providers[service].name!r} and {plugin.name!r}")
            providers[service] = plugin
    for plugin in plugins:
        missing = [service for service in plugin.requires if service not in providers]
        if missing:
            raise PluginError(
                f"plugin {plugin.name!r} requires {', '.join(repr(s.name) for s in missing)}, "
                "which no loaded plugin provides (check GATEWAY_PLUGINS)"
            )

    ordered: list[Plugin] = []
    state: dict[str, str] = {}

    def visit(plugin: Plugin, path: list[str]) -> None:
        if state.get(plugin.name) == "done":
            return
        if state.get(plugin.name) == "visiting":
            cycle = " -> ".join(path[path.index(plugin.name):] + [plugin.name])
            raise PluginError(f"circular plugin requirements: {cycle}")
        state[plugin.name] = "visiting"
        for service in plugin.requires:
            visit(providers[service], path + [plugin.name])
        state[plugin.name] = "done"
        ordered.append(plugin)

    for plugin in plugins:
        visit(plugin, [])
    return ordered
