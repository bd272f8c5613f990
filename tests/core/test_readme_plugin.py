"""The README's plugin example is the notes distribution the tests install: every file block it
shows (`# file: PATH` or `-- file: PATH` on the first line) is that file of
tests/fixtures/notes-plugin/, to the character, and every file of the distribution is shown."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "tests" / "fixtures" / "notes-plugin"
FILE_BLOCK = re.compile(r"```\w*\n(?:#|--) file: (?P<path>\S+)\n(?P<text>.*?)```", re.S)


def shown(readme: str) -> dict[str, str]:
    return {match["path"]: match["text"] for match in FILE_BLOCK.finditer(readme)}


def test_the_readme_shows_the_notes_distribution_exactly():
    files = {str(path.relative_to(NOTES)): path.read_text() for path in NOTES.rglob("*")
             if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path)}
    assert shown((ROOT / "README.md").read_text()) == files

