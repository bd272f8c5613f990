"""Health plugin: liveness and readiness for the ALB's probes."""
from gateway.plugin import Plugin, SetupContext

from plugins.health.routes import Readiness, live
from plugins.health.settings import HealthSettings


def setup(ctx: SetupContext) -> None:
    readiness = Readiness(ctx.settings.ready_cache_seconds)
    ctx.route("GET", "/health/live", live, "Liveness: 200 while the process serves",
              public=True, responses={200: "Alive"}, tags=("health",))
    ctx.route("GET", "/health/ready", readiness.handle, "Readiness of this instance and its dependencies",
              public=True, responses={200: "Ready (ok or degraded)", 503: "Not ready (fail or draining)"},
              tags=("health",))


plugin = Plugin(name="health", setup=setup, settings=HealthSettings)
