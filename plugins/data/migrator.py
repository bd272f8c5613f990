"""Versioned SQL per plugin, applied in order and recorded in `gateway_migrations`.

A plugin registers a directory of migration files (usually in its `setup`):

    database.migrations.add("media", Path(__file__).parent / "migrations")

Files are named `NNNN_description.sql` for SQL both engines accept, or
`NNNN_description.mysql.sql` and `NNNN_description.sqlite.sql` when they differ. Versions are
ordered per plugin and never edited once released. Statements end with `;` at the end of a line.
MySQL commits each DDL statement on its own, so a migration that fails halfway is not recorded
and must be safe to run again (`CREATE TABLE IF NOT EXISTS`, one change per file).

When a plugin is split, the schema an old migration made may now belong to new ones. A file whose
first lines say `-- replaces: PLUGIN VERSION` is recorded without running on a database where that
migration was applied (the data plugin's profiles table became the profiles plugin's, and its
avatar column the media plugin's).

`apply` holds an exclusive lock across every process sharing the database (MySQL `GET_LOCK`,
SQLite's write lock) while it reads what was applied and applies the rest, so several instances
starting at once apply each migration exactly once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from plugins.data.api import utc_text

REPLACES = re.compile(r"--\s*replaces:\s*(?P<plugin>[A-Za-z0-9_-]+)\s+(?P<version>\d+)\s*$")
FILE = re.compile(r"(?P<version>\d+)_(?P<name>[A-Za-z0-9_]+)(?:\.(?P<dialect>mysql|sqlite))?\.sql")
STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|$)")
LOCK = "gateway.migrations"
TABLE = """CREATE TABLE IF NOT EXISTS gateway_migrations (
    plugin VARCHAR(64) NOT NULL,
    version INTEGER NOT NULL,
    name VARCHAR(255) NOT NULL,
    applied_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (plugin, version)
)"""


@dataclass(frozen=True)
class Migration:
    plugin: str
    version: int
    name: str
    path: Path

    def replaces(self) -> set[tuple[str, int]]:
        """The migrations of other plugins whose work this one is, from its leading comment lines."""
        found = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("--"):
                break
            if match := REPLACES.fullmatch(line.strip()):
                found.add((match["plugin"], int(match["version"])))
        return found

    def statements(self) -> list[str]:
        chunks = STATEMENT_END.split(self.path.read_text(encoding="utf-8"))
        return [chunk.strip() for chunk in chunks if strip_comments(chunk).strip()]


def strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


class Migrations:
    """The registry every plugin adds its migration directory to."""

    def __init__(self) -> None:
        self._directories: dict[str, Path] = {}

    def add(self, plugin: str, directory: Path | str) -> None:
        directory = Path(directory)
        if not directory.is_dir():
            raise ValueError(f"migrations of {plugin!r}: {directory} is not a directory")
        self._directories[plugin] = directory

    def for_dialect(self, dialect: str) -> list[Migration]:
        """Every registered migration for this engine, in plugin registration then version order."""
        found = []
        for plugin, directory in self._directories.items():
            versions: dict[int, Migration] = {}
            for path in sorted(directory.glob("*.sql")):
                match = FILE.fullmatch(path.name)
                if match is None:
                    raise ValueError(f"{path}: not named NNNN_description[.mysql|.sqlite].sql")
                if match["dialect"] not in (None, dialect):
                    continue
                version = int(match["version"])
                if version in versions:
                    raise ValueError(f"{path}: version {version} of {plugin!r} is also {versions[version].path.name}")
                versions[version] = Migration(plugin, version, match["name"], path)
            found.extend(versions[v] for v in sorted(versions))
        return found

    async def apply(self, database) -> list[Migration]:
        """Apply what is pending; returns what this call applied."""
        migrations = self.for_dialect(database.dialect)
        applied = []
        async with database.locked(LOCK) as session:
            await session.execute(TABLE)
            done = {(row["plugin"], row["version"])
                    for row in await session.fetch_all("SELECT plugin, version FROM gateway_migrations")}
            for migration in migrations:
                if (migration.plugin, migration.version) in done:
                    continue
                if not migration.replaces() & done:
                    for statement in migration.statements():
                        await session.execute(statement)
                await session.execute(
                    "INSERT INTO gateway_migrations (plugin, version, name, applied_at) VALUES (?, ?, ?, ?)",
                    (migration.plugin, migration.version, migration.name, utc_text()),
                )
                applied.append(migration)
        return applied


    async def status(self, database) -> tuple[list[Migration], list[str]]:
        """Without changing anything: (pending, newer). Pending are the registered migrations not
        applied (nor replaced); newer are applied versions of a loaded plugin that this code does
        not have (a rollback across a migration, which the expand-then-contract rule allows)."""
        migrations = self.for_dialect(database.dialect)
        done: set[tuple[str, int]] = set()
        names: dict[tuple[str, int], str] = {}
        if await database.has_table("gateway_migrations"):
            for row in await database.fetch_all("SELECT plugin, version, name FROM gateway_migrations"):
                done.add((row["plugin"], row["version"]))
                names[(row["plugin"], row["version"])] = row["name"]
        pending = [m for m in migrations if (m.plugin, m.version) not in done and not m.replaces() & done]
        known = {(m.plugin, m.version) for m in migrations}
        newer = sorted(f"{plugin} {version:04d}_{names[plugin, version]}" for plugin, version in done - known
                       if plugin in self._directories)
        return pending, newer
