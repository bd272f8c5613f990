"""Input read strictly: identifiers that compare exactly, and JSON objects without a name twice.

A subject or a path id is used as a key only if every database compares it byte for byte with
what is stored.

MySQL's and MariaDB's `utf8mb4_bin` is a PAD SPACE collation (`'alice' = 'alice '`), key columns
are VARCHAR(255), and utf8mb4 cannot hold a lone surrogate (which JSON's `\\ud800` escape makes).
Refusing those before any query keeps one identity to one row and one cache key, on either engine.
"""
from __future__ import annotations

MAX_LENGTH = 255  # characters, as VARCHAR(255) counts them


def exact(value: str) -> bool:
    if not 0 < len(value) <= MAX_LENGTH or value[-1] == " ":
        return False
    return value.isascii() or utf8(value)


def utf8(value: str) -> bool:
    """Whether `value` is valid Unicode (no lone surrogates), so that it can be stored at all."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class DuplicateName(ValueError):
    """A JSON object named a member twice (RFC 7515 4 and RFC 8259 4: refused, not "last one wins")."""


def unique_names(pairs: list[tuple[str, object]]) -> dict:
    """`json.loads(..., object_pairs_hook=unique_names)`: the object, or DuplicateName."""
    names = dict(pairs)
    if len(names) != len(pairs):
        raise DuplicateName("duplicate member name")
    return names
