"""Serves each declared `RouteSpec`: validation of its JSON body and query string happens here,
from the same marshmallow schemas the OpenAPI document is built from, and the validated values
are passed to the handler as `body=` and `query=`. Bodies are read as strictly as tokens are: a
name given twice is a 400 (not "the last one wins"), and a field holding a lone surrogate (JSON's
`\ud800` escape), which no database can store, is a 422 naming it."""
from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Awaitable

from aiohttp import web
from marshmallow import RAISE, Schema, ValidationError, fields, missing
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

from gateway.identifiers import DuplicateName, unique_names, utf8
from gateway.plugin import Registry, RouteSpec, RouteWrapper
from gateway.problems import Problem, ValidationProblem


def storable(value: object) -> bool:
    if value is None or type(value) in (int, float, bool):  # no text in it
        return True
    try:
        return utf8(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    except RecursionError:
        return False


def lone_surrogates(payload: dict) -> dict[str, list[str]]:
    """The fields of a JSON object (by name) that hold a lone surrogate, in their value or name."""
    return {name.encode("utf-8", "backslashreplace").decode(): ["Not valid Unicode (a lone surrogate)."]
            for name, value in payload.items() if not (utf8(name) and storable(value))}


# Made once: json.loads with a hook makes a new decoder (and its scanner) on every call.
STRICT_JSON = json.JSONDecoder(object_pairs_hook=unique_names)


def json_object(raw: bytes) -> dict:
    """The body as a JSON object, read as json.loads reads bytes (UTF-8, -16 or -32); 400 when it
    is not JSON or names a member twice, 422 when it is not an object or a field holds a lone
    surrogate."""
    try:
        # an object's "{" then a non-zero byte is UTF-8 to json.detect_encoding (no BOM starts so)
        encoding = "utf-8" if raw[:1] == b"{" and raw[1:2] != b"\x00" else json.detect_encoding(raw)
        text = raw.decode(encoding, "surrogatepass")
        payload = STRICT_JSON.decode(text)
    except DuplicateName:
        raise Problem(400, "Bad Request", "The body names a member twice.") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Problem(400, "Bad Request", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise Problem(422, "Unprocessable Content", "The body must be a JSON object.")
    # A lone surrogate comes from a \u escape or from bytes that encode one: a text with neither
    # has none, and its fields need no look.
    if ("\\u" in text or not (text.isascii() or utf8(text))) and (errors := lone_surrogates(payload)):
        raise ValidationProblem(errors)
    return payload


def received(request: web.Request) -> bytes | None:
    """The body when all of it has arrived (a phone's small JSON comes with the headers; its declared
    length is within the route's limit, which the core checked), else None; 415 unless it is JSON."""
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported Media Type", "Send the body as application/json.")
    if request.content.is_eof() and request.content_length is not None:
        return request.content.read_nowait()
    return None


async def arriving(request: web.Request, timeout: float) -> bytes:
    """The rest of a body still on its way. A client trickling it holds only its own request, and not
    for long. (asyncio.timeout, not wait_for, which in Python 3.11 makes a task of every read.)"""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise Problem(408, "Request Timeout", f"The body did not arrive within {timeout:g} seconds.") from None


# Fields whose loaded and dumped value is the JSON value itself, of exactly this type (subclasses
# may convert): bodies are loaded (`loader`) and views dumped (plugins/data/representations.py) without
# marshmallow's machinery when every field is one of these.
PLAIN = {fields.String: str, fields.Integer: int}


def loader(schema: Schema):
    """`schema.load`, or for a schema of plain text and integer fields (no hooks, renames or
    defaults) a function that gives what it gives: when every member is known and holds its field's
    type, and each field's validators accept it, the loaded data are those members in the fields'
    order; anything else (a member unknown, of another type, or refused, a required one missing) is
    marshmallow's to load and word. marshmallow's load of a one-member PATCH was ~4 % of its CPU."""
    if schema.many or schema.partial or schema.unknown != RAISE or any(
            schema._hooks.get(hook) for hook in (PRE_LOAD, POST_LOAD, VALIDATES, VALIDATES_SCHEMA)):
        return schema.load
    plan = []
    for name, field in schema.load_fields.items():
        kind = PLAIN.get(type(field))
        if kind is None or field.attribute not in (None, name) or field.data_key not in (None, name):
            return schema.load
        plan.append((name, kind, tuple(field.validators)))
    known = frozenset(name for name, _, _ in plan)
    needed = frozenset(name for name, field in schema.load_fields.items()
                       if field.required or field.load_default is not missing)

    def load(payload: dict) -> dict:
        if not known.issuperset(payload) or not needed.issubset(payload):
            return schema.load(payload)
        data = {}
        try:
            for name, kind, validators in plan:
                if name in payload:
                    value = payload[name]
                    if type(value) is not kind:
                        return schema.load(payload)
                    for validate in validators:
                        validate(value)
                    data[name] = value
        except ValidationError:
            return schema.load(payload)
        return data

    return load


def validated(load, data):
    try:
        return load(data)
    except ValidationError as exc:
        raise ValidationProblem(exc.messages) from None


def validating(spec: RouteSpec, body_timeout: float):
    """Wrap the handler only when it has something to validate: other routes cost nothing extra. A
    body that has arrived whole is read without a coroutine of this wrapper's (each frame between a
    handler and the socket is resumed on every wait)."""
    if spec.body is None and spec.query is None:
        return spec.handler
    load_body = loader(spec.body()) if spec.body else None
    load_query = spec.query().load if spec.query else None

    async def when_arrived(request: web.Request, inputs: dict) -> web.StreamResponse:
        inputs["body"] = validated(load_body, json_object(await arriving(request, body_timeout)))
        return await spec.handler(request, **inputs)

    def handler(request: web.Request) -> Awaitable[web.StreamResponse]:
        inputs = {} if load_query is None else {"query": validated(load_query, request.query)}
        if load_body is not None:
            raw = received(request)
            if raw is None:
                return when_arrived(request, inputs)
            inputs["body"] = validated(load_body, json_object(raw))
        return spec.handler(request, **inputs)

    return handler


def add_routes(app: web.Application, registry: Registry, body_timeout: float, core_wrap: RouteWrapper) -> None:
    """Each declared route, validated, wrapped by the plugins' route wrappers and then by the core; a
    GET route serves HEAD too (aiohttp sends the GET answer's headers without its body)."""
    for declared in registry.routes:
        for spec in (declared, replace(declared, method="HEAD")) if declared.method == "GET" else (declared,):
            handler = registry.wrap(spec, validating(spec, body_timeout))
            app.router.add_route(spec.method, spec.path, core_wrap(spec, handler))
