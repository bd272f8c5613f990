"""Health plugin: liveness and readiness for the probes (the Auto Scaling group's shallow one, the
ALB's and Route 53's deep one; docs/operations.md), and /metrics, on the internal port."""
from gateway.plugin import UNLIMITED, Plugin, SetupContext

from plugins.health.routes import Readiness, live
from plugins.health.settings import HealthSettings


def setup(ctx: SetupContext) -> None:
    readiness = Readiness(ctx.settings.ready_cache_seconds, ctx.core)
    ctx.route("GET", "/health/live", live, "Liveness: 200 while the process serves",
              public=True, responses={200: "Alive"}, tags=("health",), limit_class=UNLIMITED)
    ctx.route("GET", "/health/ready", readiness.handle, "Readiness of this instance and its dependencies",
              public=True, responses={200: "Ready (ok or degraded)", 503: "Not ready (fail or draining)"},
              tags=("health",), limit_class=UNLIMITED)
    ctx.route("GET", "/metrics", readiness.metrics, "Counters in Prometheus' text format (internal port only)",
              public=True, responses={200: "Metrics", 404: "Not on this port"}, tags=("health",), limit_class=UNLIMITED)


plugin = Plugin(name="health", setup=setup, settings=HealthSettings)
