"""Plugin discovery through entry points, ordering by requirement, and what stops start-up."""
import subprocess
import sys

import pytest

from gateway.loader import PluginError, discover, order
from gateway.plugin import Plugin, ServiceKey


def make(name, provides=(), requires=()):
    return Plugin(name=name, setup=lambda ctx: None, provides=tuple(map(ServiceKey, provides)),
                  requires=tuple(map(ServiceKey, requires)))


def test_services_named_by_strings_are_refused_with_the_fix():
    with pytest.raises(PluginError, match=r"plugin 'old' names service 'database' by a string: .*ServiceKey"):
        order([Plugin(name="old", setup=lambda ctx: None, requires=("database",))])


def test_plugins_load_after_what_they_require():
    media = make("media", requires=("database", "principal"))
    data = make("data", provides=("database",), requires=("principal",))
    auth = make("auth", provides=("principal",))
    health = make("health")
    assert [p.name for p in order([media, health, data, auth])] == ["auth", "data", "media", "health"]


def test_a_missing_requirement_names_the_plugin_and_the_service():
    with pytest.raises(PluginError, match=r"plugin 'data' requires 'principal', which no loaded plugin provides"):
        order([make("data", provides=("database",), requires=("principal",))])


def test_circular_requirements_are_refused_with_the_cycle():
    with pytest.raises(PluginError, match=r"circular plugin requirements: a -> b -> a"):
        order([make("a", provides=("x",), requires=("y",)), make("b", provides=("y",), requires=("x",))])


def test_a_service_provided_twice_is_refused():
    with pytest.raises(PluginError, match="provided by both"):
        order([make("a", provides=("x",)), make("b", provides=("x",))])


def test_unknown_plugin_names_list_what_is_installed():
    with pytest.raises(PluginError, match=r"unknown plugin\(s\) nope .*installed: .*health"):
        discover(("health", "nope"))


def test_the_builtin_plugins_are_entry_points():
    assert [p.name for p in discover(("health",))] == ["health"]


def test_a_plugin_from_another_distribution_loads_the_same_way(sample_plugin, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PLUGINS": f"health,{sample_plugin}", "GATEWAY_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "gateway", "openapi"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"/sample/slow"' in done.stdout and '"/health/ready"' in done.stdout


def test_a_missing_requirement_stops_the_cli(tmp_path):
    # The profiles plugin requires 'principal' from auth.
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PLUGINS": "health,data,profiles", "GATEWAY_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "gateway", "openapi"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "plugin 'profiles' requires 'principal'" in done.stderr and "Traceback" not in done.stderr


async def test_route_wrappers_wrap_once_lower_order_outermost():
    from gateway.plugin import Registry, RouteSpec, OrderedWrapper

    calls = []

    def wrapper(name):
        def wrap(spec, handler):
            async def wrapped(request):
                calls.append(name)
                return await handler(request)
            return wrapped
        return wrap

    async def handler(request):
        calls.append("handler")
        return "response"

    registry = Registry(route_wrappers=[OrderedWrapper(200, wrapper("inner"), "b"),
                                        OrderedWrapper(100, wrapper("outer"), "a")])
    served = registry.wrap(RouteSpec("GET", "/x", handler, "x", "p"), handler)
    assert await served(None) == "response"
    assert calls == ["outer", "inner", "handler"]
