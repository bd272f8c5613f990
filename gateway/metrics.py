"""Counts an operator reads, gathered at no cost per request beyond a few dict operations.

RED per route comes from the JSON access line (CloudWatch Logs metric filters compute rates, error
counts and duration percentiles on ingestion, infra/cloudformation/monitoring.yaml) and, for
development and the VPC, from `RouteStats`, counted by the core wrapper. Plugins add counters they
already keep (cache hits, pool waits, JWKS refreshes) with `ctx.counter(name, help, read)`: nothing
is counted twice. Each worker writes one counter line a minute (`{"logger": "metrics", ...}`, the
changes since its previous line) for the metric filters, and `/metrics` on the internal port shows
the totals in Prometheus' text format.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

INTERVAL = 60.0


@dataclass
class RouteStats:
    """One route's answers: counts by status and the sum of their durations."""

    method: str
    route: str | None
    statuses: dict[int, int] = field(default_factory=dict)
    duration_ms: float = 0.0


@dataclass(frozen=True)
class Counter:
    name: str
    help: str
    read: Callable[[], float]
    cumulative: bool = True  # False: a level (draining), reported as it is, not as a change


class Metrics:
    def __init__(self) -> None:
        self.routes: list[RouteStats] = []
        self.counters: list[Counter] = []
        self._previous: dict[str, float] = {}

    def route(self, method: str, route: str | None) -> RouteStats:
        stats = RouteStats(method, route)
        self.routes.append(stats)
        return stats

    def line(self) -> str:
        """The counter line's fields: changes since the previous line (levels as they are)."""
        fields = {"level": "info", "logger": "metrics"}
        for counter in self.counters:
            value = counter.read()
            fields[counter.name] = value - self._previous.get(counter.name, 0) if counter.cumulative else value
            self._previous[counter.name] = value
        return json.dumps(fields, separators=(",", ":"))[1:]

    def prometheus(self) -> str:
        out = ["# TYPE gateway_requests_total counter", "# TYPE gateway_request_duration_ms_sum counter"]
        for stats in self.routes:
            labels = f'method="{stats.method}",route="{stats.route or ""}"'
            for status, count in sorted(stats.statuses.items()):
                out.append(f'gateway_requests_total{{{labels},status="{status}"}} {count}')
            if stats.statuses:
                out.append(f"gateway_request_duration_ms_sum{{{labels}}} {stats.duration_ms:.3f}")
        for counter in self.counters:
            kind = "counter" if counter.cumulative else "gauge"
            out += [f"# HELP gateway_{counter.name} {counter.help}", f"# TYPE gateway_{counter.name} {kind}",
                    f"gateway_{counter.name} {counter.read()}"]
        return "\n".join(out) + "\n"


METRICS = web.AppKey("metrics", Metrics)


def counter_lines(write: Callable[[str], None], interval: float = INTERVAL):
    """A cleanup context: each worker writes its counter line every `interval` seconds."""

    async def context(app: web.Application):
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                write(app[METRICS].line())

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    return context
