"""A JSON body is read strictly (gateway/routing.py `json_object`): exactly as json.loads reads bytes
with a duplicate-name hook, then every field looked at for a lone surrogate, whatever the encoding
and however the body arrives; the text-wide shortcut for bodies that cannot hold a surrogate changes
no outcome."""
from __future__ import annotations

import codecs
import json

import pytest

from gateway.identifiers import DuplicateName, unique_names
from gateway.problems import Problem, ValidationProblem
from gateway.routing import json_object, lone_surrogates

PROBLEM = "application/problem+json"


def strict_read(raw: bytes):
    """The reading as it was written first: the outcome every body must still have."""
    try:
        payload = json.loads(raw, object_pairs_hook=unique_names)
    except DuplicateName:
        return 400
    except (ValueError, RecursionError):
        return 400
    if not isinstance(payload, dict):
        return 422
    if errors := lone_surrogates(payload):
        return 422, errors
    return payload


def outcome(raw: bytes):
    try:
        return json_object(raw)
    except ValidationProblem as problem:
        return problem.status, problem.errors
    except Problem as problem:
        return problem.status


TEXTS = [
    '{"name": "plain"}', '{"name": "Zoë ✓"}', '{"name": "caf\\u00e9"}', '{"name": "smile \\ud83d\\ude00"}',
    '{"name": "a\\ud800b"}', '{"na\\udc00me": "x"}', '{"tags": ["ok", "\\udfff"]}', '{"deep": {"k": "\\ud83d"}}',
    '{"n": 1, "f": 2.5, "t": true, "z": null}', '{"name": "x", "name": "y"}', '{"o": {"k": 1, "k": 2}}',
    '[1, 2]', '"just text"', '{', '', '{"name": "\\u"}', '{"a": NaN}', '{}',
]
RAW = [
    b'{"name": "\xed\xa0\x80"}',  # a lone surrogate as the bytes that would encode it
    b'{"\xed\xb0\x80": 1}',
    b'{"name": "\xff"}',  # not UTF-8 at all
    b'{"name": "\xf0\x9f\x98\x80"}',  # a character outside the BMP, as UTF-8
]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32"]


@pytest.mark.parametrize("raw", [text.encode(encoding, "surrogatepass") for text in TEXTS for encoding in ENCODINGS
                                 if text] + RAW + [b""])
def test_every_body_reads_as_the_strict_reading_does(raw):
    assert outcome(raw) == strict_read(raw)


def test_the_shortcut_is_taken_only_where_no_surrogate_can_be():
    assert outcome(b'{"name": "caf\xc3\xa9"}') == {"name": "café"}
    assert outcome(codecs.BOM_UTF8 + b'{"name": "x"}') == {"name": "x"}
    assert outcome('{"b\\ud800": 1, "ok": "\\u00e9"}'.encode()) == (422, {"b\\ud800": ["Not valid Unicode (a lone surrogate)."]})


@pytest.fixture
async def client(make_client, sample_plugin):
    return await make_client({"GATEWAY_PLUGINS": f"health,{sample_plugin}"})


async def chunks(*parts: bytes):
    for part in parts:
        yield part


@pytest.mark.parametrize("whole", [True, False], ids=["with the headers", "chunked"])
async def test_a_body_is_validated_the_same_whether_whole_or_arriving(client, whole):
    async def post(raw: bytes):
        data = raw if whole else chunks(raw[:5], raw[5:])
        return await client.post("/sample/echo", data=data, headers={"Content-Type": "application/json"})

    ok = await post(b'{"name": "Zo\xc3\xab"}')
    assert ok.status == 200 and (await ok.json()) == {"name": "Zoë"}
    surrogate = await post(b'{"name": "\xed\xa0\x80"}')
    assert surrogate.status == 422 and set((await surrogate.json(content_type=PROBLEM))["errors"]) == {"name"}
    assert (await post(b'{"name": "a", "name": "b"}')).status == 400
    assert (await post(b'["name"]')).status == 422
    refused = await post(b'{"name": ""}')
    assert refused.status == 422 and set((await refused.json(content_type=PROBLEM))["errors"]) == {"name"}
