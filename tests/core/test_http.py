"""The core's cross-cutting behaviour: problem+json errors, request ids, body limit, access line,
trusted proxies."""
import asyncio
import json
import logging

import pytest

from gateway.app import ACCESS_LOG

PROBLEM = "application/problem+json"


@pytest.fixture
async def client(make_client, sample_plugin):
    return await make_client({"GATEWAY_PLUGINS": f"health,{sample_plugin}", "GATEWAY_MAX_BODY_BYTES": "2048"})


async def problem(response, status):
    assert response.status == status
    assert response.content_type == PROBLEM
    body = await response.json(content_type=PROBLEM)
    assert body["status"] == status and body["request_id"] == response.headers["X-Request-Id"]
    assert {"type", "title", "detail"} <= set(body)
    return body


async def test_unknown_route_is_a_404_problem(client):
    await problem(await client.get("/v1/nothing-here"), 404)


async def test_wrong_method_is_a_405_problem_with_allow(client):
    response = await client.delete("/health/live")
    await problem(response, 405)
    assert response.headers["Allow"] == "GET,HEAD"


async def test_a_body_over_the_limit_is_413(client):
    await problem(await client.post("/sample/echo", data=b"x" * 4096, headers={"Content-Type": "application/json"}),
                  413)


async def test_a_chunked_body_over_the_limit_is_413(client):
    async def chunks():
        for _ in range(8):
            yield b'"' + b"x" * 1000

    await problem(await client.post("/sample/echo", data=chunks(), headers={"Content-Type": "application/json"}), 413)


async def test_an_unexpected_exception_is_a_500_without_internals_and_a_logged_traceback(client, caplog):
    with caplog.at_level(logging.ERROR, logger="gateway.http"):
        response = await client.get("/sample/boom")
        body = await problem(response, 500)
    assert "internal detail" not in json.dumps(body)
    record = next(r for r in caplog.records if r.exc_info)
    assert "internal detail that must not leak" in str(record.exc_info[1])
    assert record.request_id == response.headers["X-Request-Id"]


async def test_validation_errors_name_the_field_and_unknown_fields_are_refused(client):
    body = await problem(await client.post("/sample/echo", json={"name": "", "extra": 1}), 422)
    assert set(body["errors"]) == {"name", "extra"}
    assert (await client.post("/sample/echo", json={"name": "ok"})).status == 200


async def test_a_non_json_body_is_415_and_broken_json_400(client):
    await problem(await client.post("/sample/echo", data="name=x",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    await problem(await client.post("/sample/echo", data="{", headers={"Content-Type": "application/json"}), 400)
    deep = "[" * 10000 + "]" * 10000
    await problem(await client.post("/sample/echo", data=deep, headers={"Content-Type": "application/json"}), 413)


async def test_request_ids_are_echoed_when_safe_and_made_otherwise(client):
    echoed = await client.get("/health/live", headers={"X-Request-Id": "abc-123_x.y:z"})
    assert echoed.headers["X-Request-Id"] == "abc-123_x.y:z"
    unsafe = await client.get("/health/live", headers={"X-Request-Id": "bad id\u00e9<script>"})
    made = [unsafe.headers["X-Request-Id"], (await client.get("/health/live")).headers["X-Request-Id"]]
    assert "bad" not in made[0] and made[0] != made[1]


async def test_one_json_access_line_per_request(client, capfd):
    capfd.readouterr()
    response = await client.get("/health/ready", headers={"X-Request-Id": "trace-me",
                                                          "Authorization": "Bearer secret.token.value"})
    assert response.status == 200
    client.app[ACCESS_LOG].flush()  # rather than waiting for its timer
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"access"' in line]
    assert len(lines) == 1
    line = lines[0]
    assert (line["method"], line["route"], line["status"], line["request_id"]) == ("GET", "/health/ready", 200,
                                                                                  "trace-me")
    assert isinstance(line["duration_ms"], float) and line["sub"] is None
    assert "secret.token.value" not in json.dumps(line)


async def test_forwarded_headers_are_believed_only_from_trusted_proxies(make_client, sample_plugin, capfd):
    async def remote_seen(client):
        capfd.readouterr()
        await client.get("/health/live", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
        client.app[ACCESS_LOG].flush()
        return [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"access"' in line][0]["remote"]

    trusted = await make_client({"GATEWAY_PLUGINS": "health", "GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8"})
    assert await remote_seen(trusted) == "198.51.100.7"  # the right-most untrusted hop
    untrusted = await make_client({"GATEWAY_PLUGINS": "health", "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8"})
    assert await remote_seen(untrusted) == "127.0.0.1"


async def test_openapi_document_lists_every_loaded_route(client):
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert {"/health/live", "/health/ready", "/sample/echo"} <= set(document["paths"])
    echo = document["paths"]["/sample/echo"]["post"]
    schema_ref = echo["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref == "#/components/schemas/Echo"
    assert document["components"]["schemas"]["Echo"]["required"] == ["name"]
    assert "422" in echo["responses"]


async def test_a_trickled_body_times_out_without_stalling_other_clients(make_client, sample_plugin):
    client = await make_client({"GATEWAY_PLUGINS": f"health,{sample_plugin}", "GATEWAY_BODY_TIMEOUT_SECONDS": "0.5"})
    release = asyncio.Event()

    async def trickle():
        yield b'{"na'
        await release.wait()
        yield b'me": "x"}'

    slow = asyncio.create_task(client.post("/sample/echo", data=trickle(), headers={"Content-Type": "application/json"}))
    for _ in range(5):
        assert (await client.get("/health/live")).status == 200
    assert not slow.done()
    await problem(await slow, 408)
    release.set()
