"""Hostile strings into every documented route (issue 17, item 4): each path parameter, query
parameter and body field of /openapi.json gets each string, and a few bodies are hostile as a
whole; whatever the route, the answer is never a 5xx. (schemathesis, in test_openapi_conformance,
generates valid-looking input; these are the inputs an attacker picks by hand.)"""
from __future__ import annotations

import base64
import re
from urllib.parse import quote

import pytest

from plugins.auth.issuer import LocalIssuer

HOSTILE = [
    "\ud800", "a\udfffb", "alice ", " ", "x" * 256, "\u200b\u200d", "abc\u202egnp.exe", "\x00", "../../etc/passwd",
    "[" * 2000, base64.urlsafe_b64encode(b"[" * 3000).decode(), "%", "\\ud800", "null",
]
BODIES = ['{"a": 1, "a": 2}', "[" * 3000 + "]" * 3000, '{"x": ' + "[" * 3000 + "]" * 3000 + "}", '"\\ud800"',
          '{"\\ud800": 1}', "\xff", "{"]


@pytest.fixture
async def client(make_client, base_env):
    client = await make_client()
    token = LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem").mint("hostile-input")
    client.session.headers["Authorization"] = f"Bearer {token}"
    await client.get("/v1/me")
    return client


def encoded(value: str) -> str:
    """Percent-encoded as a client would send it, lone surrogates as their (invalid) UTF-8 bytes."""
    return quote(value.encode("utf-8", "surrogatepass"))


def raw_json(value: str) -> str:
    """`value` as a JSON string literal, lone surrogates as `\\uXXXX` escapes (json.dumps would write them)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\u0000")
    return '"' + re.sub(r"[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


async def test_no_hostile_input_gets_a_5xx(client):
    document = await (await client.get("/openapi.json")).json()
    answers = []

    async def send(method: str, path: str, **options) -> None:
        response = await client.request(method, path, **options)
        answers.append((response.status, method, path, str(options)[:120]))

    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            method = method.upper()
            plain = re.sub(r"\{[^}]+\}", "x", template)
            for value in HOSTILE:
                for name in re.findall(r"\{([^}]+)\}", template):
                    await send(method, template.replace("{" + name + "}", encoded(value)))
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "query":
                        await send(method, f"{plain}?{parameter['name']}={encoded(value)}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            schema = body["schema"]
            if "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            json_headers = {"Content-Type": "application/json"}
            for field in schema.get("properties", {}):
                for value in HOSTILE:
                    await send(method, plain, data=f'{{"{field}": {raw_json(value)}}}'.encode(), headers=json_headers)
            for raw in BODIES:
                await send(method, plain, data=raw.encode("utf-8", "surrogateescape"), headers=json_headers)
    assert len(answers) > 200
    assert [answer for answer in answers if answer[0] >= 500] == []
