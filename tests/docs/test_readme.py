"""The README's shell blocks run as pasted. Every ```sh block carries a marker on the line before it:
`<!-- readme-test: run -->` (run on its own; the "Try it" block starts and stops its own server),
`<!-- readme-test: run with a server, ... -->` (run while a fresh server answers) or
`<!-- readme-test: skip, REASON -->` (reported as skipped, with the reason). Blocks run with bash
(`-e -o pipefail`) in a scratch copy of the clone (symlinks to the repository, so the files they
write stay in the copy), on a free port and a scratch data directory."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from devsupport.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"\s*<!-- readme-test: (run|run with a server|skip)(?:, (.+?))? -->")

# What each block that runs must print (compared without spaces), keyed by the start of its first
# line: a new block needs an entry.
EXPECTED = {
    "make run &": ['{"status":"ok"', '"display_name":"Alice"', '"locale":"en-SG"', "stoppedtheserver"],
    "API=http": ["204", '"status":"ready"', '"avatar":{"media_id"'],
    "DOMAIN_NAME=": ["deployap-southeast-1gateway-prod-region", "TOTAL"],
    "GATEWAY_PLUGINS=health,auth,data,profiles,media,sync": ['"key":"theme"', '"value":"dark"', "stoppedtheserver"],
}


@dataclass
class Block:
    line: int
    kind: str
    reason: str | None
    code: str

    def __str__(self) -> str:
        return f"README.md:{self.line} {self.code.splitlines()[0][:40]}"


def blocks() -> list[Block]:
    lines = (ROOT / "README.md").read_text().splitlines()
    found = []
    for number, line in enumerate(lines):
        if line.strip() != "```sh":
            continue
        end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
        marker = MARKER.fullmatch(lines[number - 1]) if number else None
        code = textwrap.dedent("\n".join(lines[number + 1:end])) + "\n"
        found.append(Block(number + 1, marker[1] if marker else "unmarked", marker and marker[2], code))
    return found


def small_jpeg() -> bytes:
    """A valid 8x8 grey baseline JPEG: one-code Huffman tables, every coefficient zero."""
    def segment(marker: int, payload: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    one_code = bytes([1] + [0] * 15) + b"\x00"  # a single code of length 1 for symbol 0
    return (b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, b"\x00" + b"\x01" * 64)
            + segment(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00")
            + segment(0xC4, b"\x00" + one_code) + segment(0xC4, b"\x10" + one_code)
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x3f" + b"\xff\xd9")


def test_every_shell_block_is_marked():
    unmarked = [str(block) for block in blocks() if block.kind == "unmarked"]
    assert not unmarked, f"mark each ```sh block with <!-- readme-test: run|run with a server|skip, REASON -->: {unmarked}"
    assert all(block.reason for block in blocks() if block.kind == "skip"), "a skipped block says why"


@pytest.fixture
def clone(tmp_path) -> Path:
    """A scratch copy of the clone: the repository's top-level entries as symlinks, no var/."""
    copy = tmp_path / "clone"
    copy.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("var", ".git", "setup.py"):
            (copy / entry.name).symlink_to(entry)
    # The copy shares this checkout's .venv: its setup.py is a copy dated 1970, so make never
    # rebuilds the venv from the copy (which would repoint the editable install at it) when a
    # developer's setup.py is newer than the venv.
    (copy / "setup.py").write_bytes((ROOT / "setup.py").read_bytes())
    os.utime(copy / "setup.py", (0, 0))
    return copy


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("block", blocks(), ids=str)
def test_the_block_runs_as_pasted(block, clone, tmp_path):
    if block.kind == "skip":
        pytest.skip(block.reason)
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_DATA_DIR": str(tmp_path / "var")}
    server = None
    if block.kind == "run with a server":
        (clone / "photo.jpg").write_bytes(small_jpeg())
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], cwd=clone, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, server)
    shell = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=clone, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = shell.communicate(timeout=300)
        left_running = listening(port) if server is None else False
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # whatever the block started, should it have failed half-way
        if server:
            server.terminate()
            server.wait(30)
    assert shell.returncode == 0, stdout + stderr
    expected = next(words for start, words in EXPECTED.items() if block.code.startswith(start))
    for words in expected:
        assert words in "".join(stdout.split()), f"{words!r} not in the output of {block}:\n{stdout}"
    if block.kind == "run with a server":
        assert (clone / "copy.jpg").read_bytes() == (clone / "photo.jpg").read_bytes()
    assert not left_running, "the block left a server running"
