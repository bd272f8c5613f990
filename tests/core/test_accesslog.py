"""The access log's writes: lines collected for a while and written together, whole, each write at
most PIPE_BUF bytes (atomic on a pipe shared by several workers), one timestamp per flush, every
field JSON-safe; and the lines still collected written when the app stops."""
import asyncio
import json
import select
import socket

import pytest

from gateway.accesslog import AccessLog
from gateway.app import ACCESS_LOG
from tests.data.conftest import eventually


async def written_messages(lines: int, sub: str = "user") -> list[bytes]:
    # A SOCK_SEQPACKET pair keeps each write a separate message, so the test sees the writes as made.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        log = AccessLog(ours.fileno(), interval=0.05)
        fields = log.request_fields("GET", "/v1/users/{id}")
        for n in range(lines):  # all in one event-loop iteration, as requests served together are
            log.write(fields, 200, 1.25, f"abc-{n:x}", sub, "10.0.0.1", None)
        theirs.setblocking(False)
        for _ in range(3):  # nothing written while requests are served, iteration after iteration
            with pytest.raises(BlockingIOError):
                theirs.recv(1 << 20)
            await asyncio.sleep(0)
        messages = []

        def received():  # the timer set by the first line writes them all
            while True:
                try:
                    messages.append(theirs.recv(1 << 20))
                except BlockingIOError:
                    return messages

        await eventually(received, timeout=5, what="the timer's flush")
        return received()


async def test_many_lines_are_written_in_atomic_chunks_of_whole_lines():
    messages = await written_messages(200)
    assert len(messages) > 1
    lines = []
    for message in messages:
        assert len(message) <= select.PIPE_BUF and message.endswith(b"\n")
        lines += [json.loads(line) for line in message.decode().splitlines()]
    assert [line["request_id"] for line in lines] == [f"abc-{n:x}" for n in range(200)]
    assert {line["route"] for line in lines} == {"/v1/users/{id}"}
    assert len({line["ts"] for line in lines}) == 1 and lines[0]["ts"].endswith("Z")
    assert all(line["status"] == 200 and line["duration_ms"] == 1.25 for line in lines)


async def test_a_subject_with_quotes_and_control_characters_stays_one_valid_line():
    (message,) = await written_messages(1, sub='evil"\n{"status":500}')
    (line,) = message.decode().splitlines()
    assert json.loads(line)["sub"] == 'evil"\n{"status":500}'


async def test_the_lines_still_collected_are_written_when_the_app_stops(make_client, capfd):
    client = await make_client({"GATEWAY_PLUGINS": "health"})
    client.app[ACCESS_LOG].interval = 3600  # the timer cannot write it within the test
    capfd.readouterr()
    assert (await client.get("/health/live", headers={"X-Request-Id": "last-one"})).status == 200
    assert '"last-one"' not in capfd.readouterr().out
    await client.close()  # the app's cleanup
    assert '"request_id":"last-one"' in capfd.readouterr().out
