"""Reads systemd unit files the way the tests need: every directive's values, in order."""
from __future__ import annotations

import shlex
from pathlib import Path

# Exec*= prefixes that change how systemd runs the command, not the command itself.
EXEC_PREFIXES = "-@:+!"


def directives(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def command(value: str) -> list[str]:
    """An Exec*= value as argv, as written: systemd specifiers and $VARIABLES are left alone."""
    return shlex.split(value.lstrip(EXEC_PREFIXES))
