"""Slow and hostile clients: each is refused or timed out, and other clients are served meanwhile."""
import asyncio
import json

import pytest


@pytest.fixture
async def client(make_client, sample_plugin):
    return await make_client({"GATEWAY_PLUGINS": f"health,{sample_plugin}", "GATEWAY_BODY_TIMEOUT_SECONDS": "1"})


async def raw_request(client, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request)
    await writer.drain()
    response = await reader.read(65536)
    writer.close()
    return response


async def test_json_nested_ten_thousand_deep_is_a_400_not_a_crash(client):
    deep = "[" * 10000 + "]" * 10000
    response = await client.post("/sample/echo", data=deep, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json(content_type="application/problem+json"))["detail"] == "The body is not valid JSON."


async def test_headers_at_the_limit_are_served_and_past_it_refused(client):
    at_limit = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 16000 + b"\r\nConnection: close\r\n\r\n"
    assert (await raw_request(client, at_limit)).startswith(b"HTTP/1.1 200")
    past = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 17000 + b"\r\nConnection: close\r\n\r\n"
    assert (await raw_request(client, past)).split(b" ")[1] in (b"400", b"431")
    assert (await client.get("/health/live")).status == 200


async def test_byte_by_byte_bodies_time_out_while_others_are_served(client):
    body = json.dumps({"name": "trickle"}).encode()
    head = (b"POST /sample/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    trickles = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(head + body[:1])  # then nothing more
        await writer.drain()
        trickles.append((reader, writer))
    served = [await client.get("/health/live") for _ in range(20)]
    assert all(response.status == 200 for response in served)
    for reader, writer in trickles:
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        writer.close()
