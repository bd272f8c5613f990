"""Reads systemd unit files the way the tests need: every directive's values, in order."""
from __future__ import annotations

import re
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


def seconds(value: str) -> int:
    """A systemd time span as the units here write it: `90`, `90s`, `15min`, `1h`."""
    number, unit = re.fullmatch(r"(\d+)\s*(min|h|s)?", value).groups()
    return int(number) * {"min": 60, "h": 3600}.get(unit, 1)
