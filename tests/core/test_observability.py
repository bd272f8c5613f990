"""What an operator sees (gateway/metrics.py, gateway/tracing.py, plugins/health/routes.py): exact
counts per route and status after known traffic, the counter line's changes, readiness detail and
/metrics only on the internal port, and the caller's trace header on the access line and on the
calls the gateway makes for the request (a JWKS refetch, S3)."""
from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from unittest import mock

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives.asymmetric import rsa

import plugins.media.backends.s3
from devsupport.servers import free_port
from gateway.app import ACCESS_LOG, build
from gateway.metrics import METRICS
from plugins.auth.issuer import LocalIssuer
from plugins.health.routes import internal
from tests.auth.helpers import CLIENT, POOL, REGION, Clock, JwksServer, bearer, claims, jwk, sign

AMZN = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Served:
    """One app on two listeners, as gunicorn binds them: the public GATEWAY_PORT (the test client's)
    and GATEWAY_INTERNAL_PORT."""

    def __init__(self, client, internal_port: int) -> None:
        self.client = client
        self.internal = f"http://127.0.0.1:{internal_port}"

    @property
    def metrics(self):
        return self.client.app[METRICS]

    async def get_internal(self, path: str):
        return await self.client.session.get(self.internal + path)


@pytest.fixture
def serve(aiohttp_client, base_env):
    async def start(env: dict | None = None) -> Served:
        port, internal_port = free_port(), free_port()
        app = build({**base_env, "GATEWAY_PORT": str(port), "GATEWAY_INTERNAL_PORT": str(internal_port),
                     **(env or {})}).app
        client = await aiohttp_client(app, server_kwargs={"port": port})
        await web.TCPSite(client.server.runner, "127.0.0.1", internal_port).start()
        return Served(client, internal_port)

    return start


@pytest.fixture
def token(base_env):
    return LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem").mint("user-obs1", username="obs1")


def requests_total(text: str) -> dict[str, int]:
    samples = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("gateway_requests_total{")]
    return {labels: int(value) for labels, value in samples}


async def test_metrics_show_exactly_the_traffic_served_per_route_and_status(serve, token):
    served = await serve()
    for _ in range(8):
        assert (await served.client.get("/v1/me", headers=bearer(token))).status == 200
    for path in ("/v1/nothing", "/nowhere"):
        assert (await served.client.get(path)).status == 404
    response = await served.get_internal("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    assert requests_total(await response.text()) == {
        'gateway_requests_total{method="GET",route="/v1/me",status="200"}': 8,
        'gateway_requests_total{method="*",route="",status="404"}': 2,
    }
    # The first answer from /metrics is counted once it is served, like every other.
    assert requests_total(await (await served.get_internal("/metrics")).text())[
        'gateway_requests_total{method="GET",route="/metrics",status="200"}'] == 1


async def test_the_counter_line_carries_the_changes_since_the_previous_line(serve, token):
    served = await serve()
    assert (await served.client.get("/v1/me", headers=bearer(token))).status == 200  # fills the cache
    served.metrics.line()
    for _ in range(5):
        assert (await served.client.get("/v1/me", headers=bearer(token))).status == 200
    line = json.loads("{" + served.metrics.line())
    assert line["logger"] == "metrics"
    assert (line["cache_hits"], line["cache_misses"], line["db_errors"], line["draining"]) == (5, 0, 0, 0)
    assert json.loads("{" + served.metrics.line())["cache_hits"] == 0
    text = await (await served.get_internal("/metrics")).text()
    assert "gateway_cache_hits 5" in text.splitlines() and "# TYPE gateway_draining gauge" in text


async def test_the_public_port_answers_a_status_word_and_no_metrics(serve):
    # A cache that is down: the detail would carry its address and the counters.
    served = await serve({"CACHE_URL": f"memcached://127.0.0.1:{free_port()}"})
    public = await served.client.get("/health/ready")
    assert (public.status, await public.json()) == (200, {"status": "degraded"})
    assert (await served.client.get("/metrics")).status == 404
    detail = await (await served.get_internal("/health/ready")).json()
    assert detail["status"] == "degraded" and "memcached unreachable" in detail["checks"]["cache"]["error"]


def request_on(port: int | None):
    transport = mock.Mock()
    transport.get_extra_info.return_value = None if port is None else ("127.0.0.1", port)
    return make_mocked_request("GET", "/health/ready", transport=transport)


@pytest.mark.parametrize("internal_port, production, listener, detail", [
    (None, True, 8080, False),  # production without an internal port: no detail anywhere
    (None, False, 8080, True),  # development: the one port
    (8081, True, 8081, True),
    (8081, True, 8080, False),
    (8081, False, 8080, False),  # with an internal port, only there, whatever the environment
    (8081, True, None, False),
])
def test_detail_is_served_on_the_internal_listener_only(internal_port, production, listener, detail):
    core = SimpleNamespace(internal_port=internal_port, production=production)
    assert internal(request_on(listener), core) is detail


async def test_the_trace_header_is_on_the_access_line_when_it_is_safe(make_client, capfd):
    client = await make_client()
    cases = {"amzn": ({"X-Amzn-Trace-Id": AMZN}, AMZN), "w3c": ({"traceparent": TRACEPARENT}, TRACEPARENT),
             "both": ({"traceparent": TRACEPARENT, "X-Amzn-Trace-Id": AMZN}, AMZN),
             "quote": ({"X-Amzn-Trace-Id": 'Root=1-5759e988"}'}, None),
             "space": ({"traceparent": "00-0af7 6519"}, None), "long": ({"X-Amzn-Trace-Id": "R" * 257}, None),
             "none": ({}, None)}
    for request_id, (headers, _) in cases.items():
        assert (await client.get("/health/live", headers={**headers, "X-Request-Id": request_id})).status == 200
    lines: dict[str, dict] = {}

    def logged():
        for line in capfd.readouterr().out.splitlines():
            if '"logger":"access"' in line:
                record = json.loads(line)
                lines[record["request_id"]] = record
        return len(lines) == len(cases)

    client.app[ACCESS_LOG].flush()
    assert logged()
    assert {request_id: line.get("trace") for request_id, line in lines.items()} == {
        request_id: trace for request_id, (_, trace) in cases.items()}


async def test_a_jwks_refetch_carries_the_callers_trace(aiohttp_server, make_client, monkeypatch):
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    jwks = JwksServer({"keys": [jwk(keys[0], "k0")]})
    app = web.Application()
    app.router.add_get("/pool/.well-known/jwks.json", jwks.handle)
    jwks.server = await aiohttp_server(app)
    seen, document = jwks.headers, jwks.document
    clock = Clock()
    monkeypatch.setattr("plugins.auth.jwks.monotonic", clock)
    client = await make_client({"GATEWAY_PLUGINS": "health,auth,data,profiles", "AUTH_COGNITO_REGION": REGION,
                                "AUTH_COGNITO_USER_POOL_ID": POOL, "AUTH_COGNITO_CLIENT_IDS": CLIENT,
                                "AUTH_JWKS_URL": jwks.url})
    assert len(seen) == 1 and "X-Amzn-Trace-Id" not in seen[0]  # the start-up fetch: no caller
    # A new signing key: its first token makes the gateway refetch, on that caller's behalf.
    document["keys"].append(jwk(keys[1], "k1"))
    clock.advance(11)  # past the penalty period after the start-up fetch
    traced = {**bearer(sign(keys[1], claims(), kid="k1")), "X-Amzn-Trace-Id": AMZN}
    assert (await client.get("/v1/me", headers=traced)).status == 200
    assert len(seen) == 2 and seen[1]["X-Amzn-Trace-Id"] == AMZN
    # The next request on the same connection, with no trace of its own, passes none on.
    document["keys"].append(jwk(keys[2], "k2"))
    clock.advance(11)
    assert (await client.get("/v1/me", headers=bearer(sign(keys[2], claims(), kid="k2")))).status == 200
    assert len(seen) == 3 and not {"X-Amzn-Trace-Id", "traceparent"} & set(seen[2])


async def test_s3_calls_carry_the_callers_trace(make_client, moto_endpoint, token, monkeypatch):
    bucket = f"obs-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    sent: list[tuple[str, dict]] = []
    hook = plugins.media.backends.s3.pass_trace_on

    def observed(request, **kwargs):  # the store's before-send hook, then what botocore sends
        hook(request, **kwargs)
        sent.append((request.method, dict(request.headers)))

    monkeypatch.setattr(plugins.media.backends.s3, "pass_trace_on", observed)
    client = await make_client({"MEDIA_BUCKET": bucket, "AWS_ENDPOINT_URL": moto_endpoint,
                                "AWS_REGION": "us-east-1"})
    created = await client.post("/v1/media", headers=bearer(token),
                                json={"purpose": "attachment", "content_type": "image/png", "size": 10})
    assert created.status == 201 and not sent  # presigning calls nothing
    complete = f"/v1/media/{(await created.json())['media']['id']}/complete"
    response = await client.post(complete, headers={**bearer(token), "traceparent": TRACEPARENT})
    assert response.status == 409  # nothing uploaded: S3's HeadObject said so
    assert [(method, headers.get("traceparent")) for method, headers in sent] == [("HEAD", TRACEPARENT)]
    sent.clear()
    assert (await client.post(complete, headers=bearer(token))).status == 409
    assert [method for method, _ in sent] == ["HEAD"] and "traceparent" not in sent[0][1]
