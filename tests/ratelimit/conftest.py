"""Rate limit fixtures: the data tests' apps (MariaDB, memcached) with the ratelimit plugin on, and a
fixed wall clock, so that every request of a test falls in one window of its own."""
from __future__ import annotations

import random

import pytest

from plugins.ratelimit import limiter
from tests.data.conftest import admin, data_env, issuer, start_app, user  # noqa: F401 (fixtures)

WINDOW = 60
INTO_WINDOW = 10  # seconds into the window: the answers say t=50


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch) -> float:
    # A window of this test's own: counters of other tests (same memcached, same 127.0.0.1) are elsewhere.
    now = WINDOW * random.randrange(10**6, 10**7) + INTO_WINDOW
    monkeypatch.setattr(limiter, "wall_clock", lambda: now)
    return now


@pytest.fixture
def limited(start_app):
    """`await limited(reads=5)`: an app with the rate limiter on and these budgets."""

    async def start(*, reads: int = 1000, writes: int = 1000, media: int = 1000, delay: float = 0, **overrides):
        return await start_app(GATEWAY_PLUGINS="health,auth,data,profiles,media,ratelimit", RATELIMIT_ENABLED="1",
                               RATELIMIT_WINDOW_SECONDS=str(WINDOW), RATELIMIT_READS=str(reads),
                               RATELIMIT_WRITES=str(writes), RATELIMIT_MEDIA=str(media),
                               RATELIMIT_REFUSAL_DELAY_SECONDS=str(delay), **overrides)

    return start


def limiter_of(app) -> limiter.Limiter:
    """The app's limiter, through its readiness check (the plugin provides no service)."""
    from gateway.readiness import CHECKS

    check = next(check for check in app.client.server.app[CHECKS] if check.name == "ratelimit")
    return check.probe.__self__
