"""The rate limit plugin on real memcached: a stated budget holds under a burst from one caller and
leaves others alone, budgets are separate per route class, counts are shared by two instances, it
fails open (counting per process) with memcached down and readiness says degraded, and its answers
carry well-formed RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11)."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from devsupport.servers import free_port
from gateway.app import load_settings
from gateway.settings import SettingsError
from tests.data.conftest import eventually
from tests.ratelimit.conftest import INTO_WINDOW, WINDOW, limiter_of

SERVICE_LIMIT = re.compile(r'"(read|write|media)";r=(\d+);t=(\d+)')
MEDIA = {"content_type": "image/jpeg", "size": 123456, "purpose": "attachment"}


async def statuses(app, method: str, path: str, headers: dict | None = None, count: int = 1, **options) -> list[int]:
    async def one() -> int:
        async with app.client.request(method, path, headers=headers, **options) as response:
            await response.read()
            return response.status

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_a_burst_from_one_caller_gets_its_budget_and_no_more_and_others_are_unaffected(limited, user, issuer):
    app = await limited(reads=5)
    _, headers = user
    burst = await statuses(app, "GET", "/v1/me", headers, count=40)
    assert (burst.count(200), burst.count(429)) == (5, 35)
    other = {"Authorization": f"Bearer {issuer.mint('user-other-' + user[0], username='other')}"}
    assert await statuses(app, "GET", "/v1/me", other, count=5) == [200] * 5


async def test_answers_carry_the_fields_past_half_the_quota_and_refusals_say_when_to_retry(limited, user):
    app = await limited(reads=4)
    _, headers = user
    answers = [await app.client.get("/v1/me", headers=headers) for _ in range(4)]
    assert [response.status for response in answers] == [200] * 4
    assert not [name for response in answers[:2] for name in response.headers if name.startswith("RateLimit")]
    left = []
    for response in answers[2:]:
        assert response.headers["RateLimit-Policy"] == f'"read";q=4;w={WINDOW}'
        name, remaining, reset = SERVICE_LIMIT.fullmatch(response.headers["RateLimit"]).groups()
        left.append(int(remaining))
        assert (name, int(reset)) == ("read", WINDOW - INTO_WINDOW)
    assert left == [1, 0]
    refused = await app.client.get("/v1/me", headers=headers)
    assert refused.status == 429
    assert refused.content_type == "application/problem+json"
    assert refused.headers["Retry-After"] == str(WINDOW - INTO_WINDOW)
    assert refused.headers["RateLimit"] == f'"read";r=0;t={WINDOW - INTO_WINDOW}'
    assert refused.headers["RateLimit-Policy"] == f'"read";q=4;w={WINDOW}'
    body = await refused.json()
    assert body["status"] == 429 and body["request_id"] == refused.headers["X-Request-Id"]


async def test_refusals_are_held_before_they_are_answered(limited, user):
    """A flood's connections wait out the delay (RATELIMIT_REFUSAL_DELAY_SECONDS) instead of spinning."""
    app = await limited(reads=1, delay=0.5)
    _, headers = user
    assert await statuses(app, "GET", "/v1/me", headers) == [200]
    started = time.monotonic()
    assert await statuses(app, "GET", "/v1/me", headers, count=10) == [429] * 10
    assert time.monotonic() - started >= 0.5


async def test_reads_writes_and_media_creation_have_separate_budgets(limited, user):
    app = await limited(reads=2, writes=3, media=2)
    _, headers = user
    assert await statuses(app, "GET", "/v1/me", headers, count=3) == [200, 200, 429]
    media = [await statuses(app, "POST", "/v1/media", headers, json=MEDIA) for _ in range(3)]
    assert media == [[201], [201], [429]]
    patches = [await statuses(app, "PATCH", "/v1/me", headers, json={"bio": "x"}) for _ in range(4)]
    assert patches == [[200], [200], [200], [429]]


async def test_anonymous_callers_count_by_address_and_probes_are_never_limited(limited):
    app = await limited(reads=2)
    assert await statuses(app, "GET", "/openapi.json", count=3) == [200, 200, 429]
    assert await statuses(app, "GET", "/health/live", count=10) == [200] * 10


async def test_two_instances_share_the_counts_through_memcached(limited, user):
    first, second = await limited(reads=5), await limited(reads=5)
    _, headers = user
    assert await statuses(first, "GET", "/v1/me", headers, count=3) == [200] * 3
    await eventually(lambda: settled(first), what="the first instance's counts sent")
    assert await statuses(second, "GET", "/v1/me", headers) == [200]
    await eventually(lambda: settled(second), what="the second instance's count sent")
    # The second instance now knows of 4: one more is left, for both together.
    assert await statuses(second, "GET", "/v1/me", headers, count=3) == [200, 429, 429]


def settled(app) -> bool:
    """Every count of the app's limiter has been sent and answered."""
    limiter = limiter_of(app)
    return not limiter.due and not any(count.unsent for budget in limiter.budgets for count in budget.counts.values())


async def test_callers_far_below_their_budget_cost_no_round_trip(limited, user):
    """A count is sent once a sixteenth of the budget is unsent, and on every flush past half of it."""
    app = await limited(reads=160)  # sent in chunks of 10 up to 80, then each flush
    limiter = limiter_of(app)
    _, headers = user
    assert await statuses(app, "GET", "/v1/me", headers, count=9) == [200] * 9
    await limiter.flush()
    assert (limiter.sends, limiter.due) == (0, [])
    assert await statuses(app, "GET", "/v1/me", headers) == [200]
    await eventually(lambda: settled(app), what="the chunk of 10 sent")
    assert await statuses(app, "GET", "/v1/me", headers, count=75) == [200] * 75
    await eventually(lambda: settled(app), what="the counts past half the budget sent")
    count = next(iter(limiter.budgets[0].counts.values()))
    assert count.total == 85


async def test_with_memcached_down_it_fails_open_per_process_and_readiness_is_degraded(limited, user):
    app = await limited(reads=3, CACHE_URL=f"memcached://127.0.0.1:{free_port()}", HEALTH_READY_CACHE_SECONDS="0")
    _, headers = user
    answers = [await statuses(app, "GET", "/v1/me", headers) for _ in range(4)]
    assert answers == [[200], [200], [200], [429]]  # served from the database; this process still counts

    async def degraded():
        ready = await (await app.client.get("/health/ready")).json()
        return ready["status"] == "degraded" and ready["checks"]["ratelimit"]["status"] == "fail" and ready

    ready = await eventually(degraded, what="readiness degraded by the limiter")
    assert "per process" in ready["checks"]["ratelimit"]["error"]


async def test_off_by_default_outside_production(start_app, user):
    app = await start_app(GATEWAY_PLUGINS="health,auth,data,profiles,media,ratelimit")
    response = await app.client.get("/v1/me", headers=user[1])
    assert response.status == 200 and "RateLimit" not in response.headers


@pytest.mark.parametrize("variable, value", [("RATELIMIT_READS", "0"), ("RATELIMIT_WINDOW_SECONDS", "0"),
                                             ("RATELIMIT_FLUSH_SECONDS", "60"), ("RATELIMIT_ENABLED", "maybe")])
def test_bad_settings_are_refused_by_name(variable, value, base_env):
    with pytest.raises(SettingsError) as refused:
        load_settings({**base_env, "GATEWAY_PLUGINS": "health,auth,data,ratelimit", variable: value})
    assert variable in refused.value.problems


async def test_the_window_turns_at_its_end_and_a_used_up_caller_starts_afresh(limited, user, monkeypatch):
    """The window is kept by a timer at each window's end, not read from the clock per request; the
    past window's counts go when it turns."""
    from plugins.ratelimit import limiter as module

    first = WINDOW * 123457  # a window of this test's own, 1 ms from its end
    clock = [first + WINDOW - 0.001]
    monkeypatch.setattr(module, "wall_clock", lambda: clock[0])
    app = await limited(reads=2)
    _, headers = user
    assert await statuses(app, "GET", "/v1/me", headers, count=3) == [200, 200, 429]
    clock[0] = first + WINDOW  # the timer, due in 1 ms, finds the next window
    await eventually(lambda: limiter_of(app).window == first // WINDOW + 1, what="the window turned")
    assert [budget.counts for budget in limiter_of(app).budgets] == [{}, {}, {}]  # the past window's are gone
    assert await statuses(app, "GET", "/v1/me", headers, count=3) == [200, 200, 429]
