"""What browsers and HTTP tools expect: CORS for configured origins only (preflights without a token),
HEAD on every GET route, and a request aiohttp cannot parse (a header over 16 KiB) answered as
problem+json with a request id and logged as a client's error, not a server's."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from plugins.auth.issuer import LocalIssuer

ALLOWED = "https://app.example.com"


@pytest.fixture
def bearer(base_env) -> dict:
    issuer = LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem")
    return {"Authorization": f"Bearer {issuer.mint('browser-user', username='browser')}"}


@pytest.fixture
async def client(make_client):
    return await make_client({"CORS_ALLOWED_ORIGINS": f"{ALLOWED}, https://Admin.Example.com:8443"})


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(client):
    response = await client.options("/v1/me", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type, if-match"})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {"GET", "PATCH", "DELETE"} <= set(response.headers["Access-Control-Allow-Methods"].split(","))
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match"} <= allowed_headers
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert response.headers["Vary"] == "Origin"
    configured_in_capitals = await client.options("/v1/me", headers={
        "Origin": "https://admin.example.com:8443", "Access-Control-Request-Method": "GET"})
    assert configured_in_capitals.headers["Access-Control-Allow-Origin"] == "https://admin.example.com:8443"


async def test_a_preflight_from_another_origin_gets_no_cors_fields(client):
    response = await client.options("/v1/me", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "GET"})
    assert response.status == 204
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    assert (await client.options("/nothing-here", headers={"Origin": ALLOWED})).status == 404


async def test_answers_to_an_allowed_origin_carry_cors_fields_refusals_included(client, bearer):
    answer = await client.get("/v1/me", headers={"Origin": ALLOWED, **bearer})
    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED and answer.headers["Vary"] == "Origin"
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    refused = await client.get("/v1/me", headers={"Origin": ALLOWED})
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    other = await client.get("/v1/me", headers={"Origin": "https://evil.example", **bearer})
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
    assert other.headers["Vary"] == "Origin"


async def test_no_cors_without_configured_origins(make_client):
    client = await make_client()
    response = await client.get("/health/live", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers and "Vary" not in response.headers


@pytest.mark.parametrize("origins", ["https://app.example.com/path", "app.example.com", "*"])
async def test_an_origin_that_is_not_one_is_a_configuration_error(origins, base_env):
    from gateway.app import create_app
    from gateway.settings import SettingsError

    with pytest.raises(SettingsError, match="CORS_ALLOWED_ORIGINS"):
        create_app({**base_env, "CORS_ALLOWED_ORIGINS": origins})


async def test_head_on_a_get_route_has_the_get_headers_and_no_body(client, bearer):
    get = await client.get("/v1/me", headers=bearer)
    head = await client.head("/v1/me", headers=bearer)
    assert (get.status, head.status) == (200, 200)
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(await get.read()))
    assert await head.read() == b""
    unchanged = await client.head("/v1/me", headers={**bearer, "If-None-Match": get.headers["ETag"]})
    assert unchanged.status == 304
    for path in ("/health/live", "/openapi.json"):
        assert (await client.head(path)).status == 200


async def test_head_bodies_are_not_sent_on_the_wire(client, bearer):
    """aiohttp's client drops a HEAD answer's body itself: read the raw bytes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"HEAD /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 16" in head and body == b""


async def test_a_header_over_16_kib_is_a_problem_with_a_request_id_and_not_an_error_log(client, caplog):
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 20000 + b"\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request")  # aiohttp answers as HTTP/1.0: it read no version
    assert b"Content-Type: application/problem+json" in head
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["request_id"]
    assert f"X-Request-Id: {problem['request_id']}".encode() in head
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    assert b"aaaa" not in caplog.text.encode()
